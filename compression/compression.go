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

// NewWriter returns a writer that compresses into w. Close flushes the
// compressed stream; it does not close w.
func NewWriter(w io.Writer, algo string, opts Options) (io.WriteCloser, error) {
	switch algo {
	case None:
		return nopCloser{w}, nil
	case XZ:
		return newChunkWriter(w, opts.chunkSize(), opts.concurrency(), compressXZ), nil
	case Zstd:
		if opts.SizeHint > 0 && opts.SizeHint <= smallZstd {
			return newSmallZstd(w), nil
		}
		size := zstdChunkSize
		if opts.ChunkSize > 0 {
			size = opts.ChunkSize
		}
		return newChunkWriter(w, size, opts.concurrency(), compressZstd), nil
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

var zstdPool = sync.Pool{New: func() any {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(smallZstd))
	if err != nil {
		panic(err) // constant, valid options
	}
	return e
}}

// pooledZstd returns its encoder to the pool on Close.
type pooledZstd struct{ e *zstd.Encoder }

func newSmallZstd(w io.Writer) *pooledZstd {
	e := zstdPool.Get().(*zstd.Encoder)
	e.Reset(w)
	return &pooledZstd{e: e}
}

func (p *pooledZstd) Write(b []byte) (int, error) { return p.e.Write(b) }

func (p *pooledZstd) Close() error {
	err := p.e.Close()
	p.e.Reset(nil)
	zstdPool.Put(p.e)
	p.e = nil
	return err
}

// zstdChunkSize is the input size of one zstd frame: zstd needs no large
// window to do well, and small frames keep the encoders' memory low.
const zstdChunkSize = 4 << 20

// zstdChunkPool holds single-threaded encoders for whole chunks.
var zstdChunkPool = sync.Pool{New: func() any {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdChunkSize))
	if err != nil {
		panic(err) // constant, valid options
	}
	return e
}}

// compressZstd appends one complete zstd frame of src to dst.
func compressZstd(dst *bytes.Buffer, src []byte) error {
	e := zstdChunkPool.Get().(*zstd.Encoder)
	defer zstdChunkPool.Put(e)
	out := e.EncodeAll(src, dst.AvailableBuffer())
	dst.Write(out)
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
