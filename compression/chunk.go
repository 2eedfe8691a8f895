package compression

import (
	"bytes"
	"io"
	"runtime"
	"sync"
)

// cpuSlots bounds the chunk compressions running at once across all streams
// of the process, so that parallel NARs and parallel chunks share the cores
// instead of oversubscribing them.
var cpuSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// chunkTokens bounds the chunk buffers alive at once across all streams of
// the process (filling, queued, compressing or waiting to be written): one
// per core, so the cores stay busy while memory
// stays at a few chunks whatever the number of streams. A token is taken
// when a chunk buffer is started and given back once its compressed bytes
// are written; compressing never waits for a token, so tokens always come
// back.
var chunkTokens = make(chan struct{}, runtime.GOMAXPROCS(0))

// bufPool recycles chunk and output buffers.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// chunkWriter splits its input into fixed-size chunks, compresses them
// concurrently with compress, and writes the results to w in input order.
// At most inflight chunks are held per stream: Write blocks beyond that,
// which bounds memory whatever the stream's length.
type chunkWriter struct {
	w        io.Writer
	size     int
	compress func(dst *bytes.Buffer, src []byte) error

	cur     *bytes.Buffer
	started bool
	queue   chan chan chunkResult
	done    chan struct{}
	err     error // set by the drain goroutine, read after done or under mu
	mu      sync.Mutex
}

type chunkResult struct {
	in, out *bytes.Buffer
	err     error
}

func newChunkWriter(w io.Writer, size, inflight int, compress func(*bytes.Buffer, []byte) error) *chunkWriter {
	cw := &chunkWriter{
		w:        w,
		size:     size,
		compress: compress,
		queue:    make(chan chan chunkResult, inflight),
		done:     make(chan struct{}),
	}
	go cw.drain()
	return cw
}

// drain writes compressed chunks in order; after an error it keeps
// receiving so that no compressing goroutine blocks forever.
func (cw *chunkWriter) drain() {
	defer close(cw.done)
	for ch := range cw.queue {
		r := <-ch
		if err := cw.firstErr(r.err); err == nil {
			if _, werr := cw.w.Write(r.out.Bytes()); werr != nil {
				cw.firstErr(werr)
			}
		}
		r.in.Reset()
		r.out.Reset()
		bufPool.Put(r.in)
		bufPool.Put(r.out)
		<-chunkTokens
	}
}

// firstErr records err if it is the first, and returns the first error.
func (cw *chunkWriter) firstErr(err error) error {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.err == nil {
		cw.err = err
	}
	return cw.err
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := cw.firstErr(nil); err != nil {
			return n, err
		}
		if cw.cur == nil {
			cw.startChunk()
			cw.cur.Grow(min(cw.size, len(p)))
		}
		k := min(cw.size-cw.cur.Len(), len(p))
		cw.cur.Write(p[:k])
		p = p[k:]
		n += k
		if cw.cur.Len() == cw.size {
			cw.dispatch()
		}
	}
	return n, nil
}

// startChunk takes a token and a buffer for the next chunk.
func (cw *chunkWriter) startChunk() {
	chunkTokens <- struct{}{}
	cw.cur = bufPool.Get().(*bytes.Buffer)
}

// dispatch hands the current chunk to a compressing goroutine.
func (cw *chunkWriter) dispatch() {
	in := cw.cur
	cw.cur = nil
	cw.started = true
	ch := make(chan chunkResult, 1)
	cw.queue <- ch
	go func() {
		cpuSlots <- struct{}{}
		out := bufPool.Get().(*bytes.Buffer)
		err := cw.compress(out, in.Bytes())
		<-cpuSlots
		ch <- chunkResult{in: in, out: out, err: err}
	}()
}

// Close compresses what is left and waits until everything is written.
// An empty input still yields one valid (empty) stream.
func (cw *chunkWriter) Close() error {
	if cw.cur != nil || !cw.started {
		if cw.cur == nil {
			cw.startChunk()
		}
		cw.dispatch()
	}
	close(cw.queue)
	<-cw.done
	return cw.firstErr(nil)
}
