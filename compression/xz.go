package compression

import (
	"bytes"
	"fmt"

	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// chunkSize is the input size of one independent xz stream or zstd frame.
// Larger chunks compress a little better; smaller ones spread a mid-sized
// NAR over more cores. The chunks alive at once are bounded across all
// streams (chunkTokens).
const chunkSize = 16 << 20

// xzMaxDict is the dictionary size of `xz -6`, Nix's default preset. With
// 16 MiB chunks it compresses toolchain NARs about 4% smaller than 8 MiB
// chunks; a 16 MiB dictionary gains 2% more but costs 40 MiB more memory
// per encoder (ulikunitz/xz's hash chains take 4 bytes per dictionary byte).
const xzMaxDict = 8 << 20

// compressXZ appends one complete xz stream of src to dst, with a
// dictionary no larger than src needs, so that small NARs stay cheap.
func compressXZ(dst *bytes.Buffer, src []byte) error {
	dict := lzma.MinDictCap
	for dict < len(src) && dict < xzMaxDict {
		dict <<= 1
	}
	w, err := xz.WriterConfig{DictCap: dict, Matcher: lzma.HashTable4}.NewWriter(dst)
	if err != nil {
		return fmt.Errorf("starting xz: %w", err)
	}
	if _, err := w.Write(src); err != nil {
		return fmt.Errorf("compressing xz: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("finishing xz: %w", err)
	}
	return nil
}
