package narinfo

import "strings"

// CacheInfoValue returns the value of key in the text of a binary cache's
// nix-cache-info file (doc/manual/source/protocols/binary-cache/
// nix-cache-info.md): "Key: value" lines, values trimmed, lines without a
// colon ignored. It returns "" when key is absent.
func CacheInfoValue(text, key string) string {
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
