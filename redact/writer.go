package redact

import (
	"bytes"
	"io"
	"sync"
)

// maxLine is how much of a line without end a Writer holds before it
// passes on what it can (up to the last byte no secret contains).
const maxLine = 64 << 10

// tail is how much of a long line a Writer keeps back when it passes the
// rest on, so that a secret cut by the write boundary is still whole.
const tail = 1 << 10

// A Writer redacts text line by line before writing it to the writer
// under it. Lines end at '\n' or '\r' (a progress bar redraws with '\r');
// an unfinished line waits for its end, or for Flush. It is safe for
// concurrent use, and every line reaches the writer under it in one Write.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	r   *Redactor
	buf []byte
	err error
}

// NewWriter returns a Writer that redacts with r (nil: String) into w.
func NewWriter(w io.Writer, r *Redactor) *Writer {
	return &Writer{w: w, r: r}
}

// Write buffers p and writes every line it completes, redacted. It
// reports the error of an earlier write to the writer under it.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	n := bytes.LastIndexAny(w.buf, "\n\r") + 1
	if n == 0 && len(w.buf) > maxLine {
		// A long line (one JSON document): pass on what ends at a byte
		// no secret contains, well before the end.
		n = bytes.LastIndexAny(w.buf[:len(w.buf)-tail], "\"'<>,;{}[]()\t") + 1
		if n == 0 && len(w.buf) > 16*maxLine {
			n = len(w.buf)
		}
	}
	if n > 0 {
		w.emit(n)
	}
	return len(p), w.err
}

// emit writes w.buf[:n], redacted, and keeps the rest.
func (w *Writer) emit(n int) {
	out := w.r.String(string(w.buf[:n]))
	_, w.err = io.WriteString(w.w, out)
	w.buf = w.buf[:copy(w.buf, w.buf[n:])]
}

// Flush writes the unfinished line, redacted.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && len(w.buf) > 0 {
		w.emit(len(w.buf))
	}
	return w.err
}

// Unwrap flushes w and returns the writer under it, for output that is
// data rather than text (a NAR on stdout) or to ask whether it is a
// terminal.
func (w *Writer) Unwrap() io.Writer {
	w.Flush()
	return w.w
}

// Unwrap returns the writer under w if w is a Writer (flushing it), else w.
func Unwrap(w io.Writer) io.Writer {
	if rw, ok := w.(*Writer); ok {
		return rw.Unwrap()
	}
	return w
}
