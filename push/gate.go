package push

import (
	"context"
	"errors"
	"io"
)

// gatedReader lets a NAR be compressed before its upload may start: it
// passes up to free bytes of r through at once, and waits for open
// before passing any more, or r's end. free is under the smallest part
// a Bucket's Put sends (s3cache.MinPartSize): Put sends nothing before
// it has read a whole part or the end of its stream, so no byte reaches
// the bucket before open returns, while the compressor fills the first
// part's buffer.
type gatedReader struct {
	ctx    context.Context
	r      io.Reader
	free   int64
	open   func(context.Context) error
	opened bool
	err    error // open's error, if it failed
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.opened {
		return g.r.Read(p)
	}
	if g.free > 0 {
		n, err := g.r.Read(p[:min(int64(len(p)), g.free)])
		g.free -= int64(n)
		if !errors.Is(err, io.EOF) {
			return n, err
		}
		// The end: held back until the gate opens.
		if gerr := g.pass(); gerr != nil {
			return 0, gerr
		}
		return n, err
	}
	if err := g.pass(); err != nil {
		return 0, err
	}
	return g.r.Read(p)
}

// pass waits for the gate to open.
func (g *gatedReader) pass() error {
	if err := g.open(g.ctx); err != nil {
		g.err = err
		return err
	}
	if err := g.ctx.Err(); err != nil {
		return err
	}
	g.opened = true
	return nil
}
