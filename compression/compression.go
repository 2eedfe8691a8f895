// Package compression compresses and decompresses NARs in the formats a Nix
// binary cache uses (src/libstore/binary-cache-store.cc): xz (the default),
// zstd and none.
//
// Both compressors use several cores on one stream. xz output is a
// concatenation of independent xz streams, one per chunk, compressed in
// parallel and written in order; Nix (liblzma) and every xz decoder read such
// a file as one. zstd output is likewise a sequence of independent frames,
// one per chunk (as Nix 2.35 writes), compressed in parallel with
// klauspost/compress, whose own stream encoder compresses one block at a
// time and kept a push of one large NAR on one core. Small inputs use a
// pooled single-threaded encoder.
package compression

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// The supported algorithms, as named in narinfo `Compression:` lines and the
// `compression=` store URL parameter.
const (
	XZ   = "xz"
	Zstd = "zstd"
	None = "none"
)

// Algorithms lists the supported algorithm names.
var Algorithms = []string{XZ, Zstd, None}

// Check returns an error unless algo is supported.
func Check(algo string) error {
	if slices.Contains(Algorithms, algo) {
		return nil
	}
	return fmt.Errorf("unsupported compression %q (use xz, zstd or none)", algo)
}

// Ext is the file extension Nix gives a NAR compressed with algo: ".xz",
// ".zst", or "" for none.
func Ext(algo string) string {
	switch algo {
	case XZ:
		return ".xz"
	case Zstd:
		return ".zst"
	}
	return ""
}

// Options tune a compressing writer.
type Options struct {
	// Concurrency is how many chunks of this stream may be compressed at
	// once; 0 means GOMAXPROCS.
	Concurrency int
	// SizeHint is the expected input size (the NarSize), used to size
	// buffers and dictionaries for small inputs; 0 if unknown.
	SizeHint int64
	// ChunkSize is the input size of one independent xz stream or zstd
	// frame; 0 means 16 MiB. Tests use small chunks to cross chunk
	// boundaries cheaply.
	ChunkSize int
	// Level is the compression level; 0 means the codec's default (xz's
	// preset 6, zstd's level 3, as Nix). For xz, 1–9 choose the dictionary
	// size as xz's presets do (1 MiB … 8 MiB at 6 … 64 MiB at 9), up to the
	// chunk size; 7 and above cost about 40 MiB more memory per core. For
	// zstd, 1–22 map to the encoder's four speeds (2 and below fastest,
	// 3–5 default, 6–9 better, 10 and above best). NixLevel converts
	// Nix's compression-level.
	Level int
}

func (o Options) chunkSize() int {
	if o.ChunkSize > 0 {
		return o.ChunkSize
	}
	return chunkSize
}

func (o Options) concurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return runtime.GOMAXPROCS(0)
}

// NixLevel converts Nix's compression-level for algo (-1 for the codec's
// default) to an Options.Level, refusing a level the codec does not have:
// xz takes 0–9 (0 behaves as 1 here), zstd 0–22 (0 is zstd's default).
// none ignores the level, as Nix does.
func NixLevel(algo string, level int) (int, error) {
	if err := Check(algo); err != nil {
		return 0, err
	}
	max := 0
	switch algo {
	case None:
		return 0, nil
	case XZ:
		max = 9
	case Zstd:
		max = 22
	}
	switch {
	case level == -1:
		return 0, nil
	case level < 0 || level > max:
		return 0, fmt.Errorf("compression level %d is out of range for %s (0 to %d, or -1 for the default)", level, algo, max)
	case algo == XZ && level == 0:
		return 1, nil
	}
	return level, nil
}

// NewWriter returns a writer that compresses into w. Close flushes the
// compressed stream; it does not close w.
func NewWriter(w io.Writer, algo string, opts Options) (io.WriteCloser, error) {
	switch algo {
	case None:
		return nopCloser{w}, nil
	case XZ:
		return newChunkWriter(w, opts.chunkSize(), opts.concurrency(), xzCompressor(xzDict(opts.Level))), nil
	case Zstd:
		level := zstdLevel(opts.Level)
		if opts.SizeHint > 0 && opts.SizeHint <= smallZstd {
			return newSmallZstd(w, level), nil
		}
		size := zstdChunkSize
		if opts.ChunkSize > 0 {
			size = opts.ChunkSize
		}
		return newChunkWriter(w, size, opts.concurrency(), zstdCompressor(level)), nil
	}
	return nil, Check(algo)
}

// NewReader returns a reader of the decompressed bytes of r.
func NewReader(r io.Reader, algo string) (io.ReadCloser, error) {
	switch algo {
	case None:
		return io.NopCloser(r), nil
	case XZ:
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("reading xz: %w", err)
		}
		return io.NopCloser(xr), nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("reading zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return nil, Check(algo)
}

// smallZstd is the input size up to which a pooled single-threaded zstd
// encoder is used: setting up a concurrent encoder costs more than
// compressing a small NAR.
const smallZstd = 4 << 20

// zstdLevel is the encoder speed for an Options.Level.
func zstdLevel(level int) zstd.EncoderLevel {
	if level <= 0 {
		return zstd.SpeedDefault
	}
	return zstd.EncoderLevelFromZstd(level)
}

// zstdPools holds, for each encoder speed, pools of single-threaded
// encoders: for small streams (window smallZstd) and for whole chunks
// (window zstdChunkSize).
var zstdPools, zstdChunkPools [zstd.SpeedBestCompression + 1]sync.Pool

func init() {
	for l := zstd.SpeedFastest; l <= zstd.SpeedBestCompression; l++ {
		zstdPools[l].New = newZstdEncoder(l, smallZstd)
		zstdChunkPools[l].New = newZstdEncoder(l, zstdChunkSize)
	}
}

func newZstdEncoder(level zstd.EncoderLevel, window int) func() any {
	return func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(window), zstd.WithEncoderLevel(level))
		if err != nil {
			panic(err) // constant, valid options
		}
		return e
	}
}

// pooledZstd returns its encoder to the pool on Close.
type pooledZstd struct {
	e    *zstd.Encoder
	pool *sync.Pool
}

func newSmallZstd(w io.Writer, level zstd.EncoderLevel) *pooledZstd {
	pool := &zstdPools[level]
	e := pool.Get().(*zstd.Encoder)
	e.Reset(w)
	return &pooledZstd{e: e, pool: pool}
}

func (p *pooledZstd) Write(b []byte) (int, error) { return p.e.Write(b) }

func (p *pooledZstd) Close() error {
	err := p.e.Close()
	p.e.Reset(nil)
	p.pool.Put(p.e)
	p.e = nil
	return err
}

// zstdChunkSize is the input size of one zstd frame: zstd needs no large
// window to do well, and small frames keep the encoders' memory low.
const zstdChunkSize = 4 << 20

// zstdCompressor returns a function that appends one complete zstd frame
// of src to dst, at the given speed.
func zstdCompressor(level zstd.EncoderLevel) func(dst *bytes.Buffer, src []byte) error {
	pool := &zstdChunkPools[level]
	return func(dst *bytes.Buffer, src []byte) error {
		e := pool.Get().(*zstd.Encoder)
		defer pool.Put(e)
		out := e.EncodeAll(src, dst.AvailableBuffer())
		dst.Write(out)
		return nil
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
