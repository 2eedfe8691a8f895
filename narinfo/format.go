package narinfo

import (
	"io"
	"strconv"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

// String returns the narinfo as Nix writes it (NarInfo::to_string), followed
// by the Extra lines. References and Sigs are written sorted and without
// duplicates whatever their order in n. Values are written as they are: the
// caller keeps newlines out of them and ':' and newlines out of Extra keys.
func (n *NarInfo) String() string {
	var b strings.Builder
	field := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	field("StorePath", n.StorePath)
	field("URL", n.URL)
	field("Compression", n.Compression)
	if n.FileHash != nil {
		field("FileHash", formatHash(n.FileHash))
	}
	if n.FileSize != 0 {
		field("FileSize", strconv.FormatUint(n.FileSize, 10))
	}
	field("NarHash", formatHash(n.NarHash))
	field("NarSize", strconv.FormatUint(n.NarSize, 10))
	field("References", strings.Join(sortedSet(n.References), " "))
	if n.Deriver != "" {
		field("Deriver", n.Deriver)
	}
	for _, s := range sortedSet(n.Sigs) {
		field("Sig", s)
	}
	if n.CA != "" {
		field("CA", n.CA)
	}
	for _, f := range n.Extra {
		field(f.Key, f.Value)
	}
	return b.String()
}

// WriteTo writes n.String() to w; it implements io.WriterTo.
func (n *NarInfo) WriteTo(w io.Writer) (int64, error) {
	k, err := io.WriteString(w, n.String())
	return int64(k), err
}

// formatHash renders h as "<algo>:<nix32>", or "" for nil.
func formatHash(h *nixhash.Hash) string {
	if h == nil {
		return ""
	}
	return h.Format(nixhash.NixBase32, true)
}
