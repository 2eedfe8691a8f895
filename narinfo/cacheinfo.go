package narinfo

import "strings"

// LookupCacheInfo returns the value of key in the text of a binary cache's
// nix-cache-info file, and whether key is there at all, read as Nix's
// BinaryCacheStore::init does (src/libstore/binary-cache-store.cc): lines
// split at '\n', a line without ':' ignored, the text before the first ':'
// compared with key exactly (not trimmed), the value trimmed of spaces,
// tabs, '\r' and '\n'. When key appears on several lines the last one wins,
// as it does for Nix's WantMassQuery and Priority (Nix checks every
// StoreDir line against its store).
//
// A key present with an empty value ("StoreDir:") gives "", true: Nix
// refuses such a cache, as its StoreDir is not the store's.
func LookupCacheInfo(text, key string) (value string, ok bool) {
	for line := range strings.SplitSeq(text, "\n") {
		if k, v, found := strings.Cut(line, ":"); found && k == key {
			value, ok = strings.Trim(v, " \t\r\n"), true
		}
	}
	return value, ok
}

// CacheInfoValue returns the value of key in a nix-cache-info text, or ""
// when key is absent or empty; see LookupCacheInfo, which tells the two
// apart.
func CacheInfoValue(text, key string) string {
	v, _ := LookupCacheInfo(text, key)
	return v
}
