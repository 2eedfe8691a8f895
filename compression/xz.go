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

// xzDefaultDict is the dictionary size of `xz -6`, Nix's default preset.
// With 16 MiB chunks it compresses toolchain NARs about 4% smaller than
// 8 MiB chunks; a 16 MiB dictionary gains 2% more but costs 40 MiB more
// memory per encoder (ulikunitz/xz's hash chains take 4 bytes per
// dictionary byte).
const xzDefaultDict = 8 << 20

// xzPresetDicts are the dictionary sizes of xz's presets 1 to 9. Only the
// dictionary size varies with the level here: ulikunitz/xz's other match
// finder (a binary tree) is far too slow to use.
var xzPresetDicts = [...]int{1 << 20, 2 << 20, 4 << 20, 4 << 20, 8 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20}

// xzDict is the largest dictionary for an Options.Level (0: the default).
func xzDict(level int) int {
	if level < 1 || level > len(xzPresetDicts) {
		return xzDefaultDict
	}
	return xzPresetDicts[level-1]
}

// xzCompressor returns a function that appends one complete xz stream of
// src to dst, with a dictionary of at most maxDict bytes and no larger
// than src needs, so that small NARs stay cheap (and no dictionary
// exceeds a chunk).
func xzCompressor(maxDict int) func(dst *bytes.Buffer, src []byte) error {
	return func(dst *bytes.Buffer, src []byte) error { return compressXZ(dst, src, maxDict) }
}

// compressXZ appends one complete xz stream of src to dst.
func compressXZ(dst *bytes.Buffer, src []byte, maxDict int) error {
	dict := lzma.MinDictCap
	for dict < len(src) && dict < maxDict {
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
