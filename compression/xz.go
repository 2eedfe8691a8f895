package compression

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
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

// probeSize is the size of the pieces of a chunk that are judged
// compressible or not (see appendStoredXZ).
const probeSize = 1 << 20

// compressXZ appends xz streams of src to dst: one LZMA2-compressed stream
// for each run of compressible probeSize pieces, one stored stream for
// each run of incompressible ones.
func compressXZ(dst *bytes.Buffer, src []byte, maxDict int) error {
	if len(src) == 0 {
		return lzmaXZ(dst, src, maxDict)
	}
	stored := make([]bool, (len(src)+probeSize-1)/probeSize)
	for i := range stored {
		stored[i] = incompressible(src[i*probeSize : min((i+1)*probeSize, len(src))])
	}
	for i := 0; i < len(stored); {
		j := i + 1
		for j < len(stored) && stored[j] == stored[i] {
			j++
		}
		run := src[i*probeSize : min(j*probeSize, len(src))]
		if stored[i] {
			appendStoredXZ(dst, run)
		} else if err := lzmaXZ(dst, run, maxDict); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// probeBufs recycles the output buffers of incompressible.
var probeBufs = sync.Pool{New: func() any { return new([]byte) }}

// incompressible reports whether zstd's fastest level fails to take 3%
// off piece: xz would gain little more there, at great cost.
func incompressible(piece []byte) bool {
	if len(piece) < 4096 {
		return false
	}
	pool := &zstdPools[zstd.SpeedFastest]
	e := pool.Get().(*zstd.Encoder)
	defer pool.Put(e)
	buf := probeBufs.Get().(*[]byte)
	defer probeBufs.Put(buf)
	*buf = e.EncodeAll(piece, (*buf)[:0])
	return len(*buf) > len(piece)-len(piece)/32
}

// lzmaXZ appends one complete LZMA2-compressed xz stream of src to dst
// (an empty src gives an empty stream).
func lzmaXZ(dst *bytes.Buffer, src []byte, maxDict int) error {
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
