package nar

import (
	"context"
	"errors"
	"io"
)

// errReaderClosed is what a Dump behind Open sees when its reader is closed
// before the end.
var errReaderClosed = errors.New("NAR reader closed")

// Open returns a reader of the NAR serialisation of path, produced by Dump in
// a goroutine through an io.Pipe. Read returns Dump's error, if any, after
// the bytes written before it; a cancelled ctx ends the stream with ctx's
// error.
//
// The caller must Close the reader, also after an error or early; Close stops
// the goroutine and waits for it, so none outlives the reader.
func Open(ctx context.Context, path string) io.ReadCloser {
	pr, pw := io.Pipe()
	r := &pipeReader{PipeReader: pr, done: make(chan struct{})}
	// Unblock a Dump waiting for a reader that is gone when ctx ends.
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	go func() {
		defer close(r.done)
		defer stop()
		_, err := Dump(ctx, pw, path)
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return r
}

type pipeReader struct {
	*io.PipeReader
	done chan struct{}
}

// Close ends the stream and waits for the dumping goroutine to return.
func (r *pipeReader) Close() error {
	r.CloseWithError(errReaderClosed)
	<-r.done
	return nil
}
