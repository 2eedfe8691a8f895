package s3cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// defaultConcurrency is the number of parts a streaming Put uploads at once.
const defaultConcurrency = 4

// abortTimeout bounds the abort of a failed multipart upload, which runs
// even when the Put's context is already cancelled.
const abortTimeout = time.Minute

// partSizeFor returns the part size for an object of size (or expected
// size, 0 if unknown): at least base and MinPartSize, large enough that the
// object fits in MaxParts parts, rounded up to a MiB, at most MaxPartSize.
func partSizeFor(base, size int64) int64 {
	p := max(base, MinPartSize)
	if size > 0 {
		need := (size + MaxParts - 1) / MaxParts
		need = (need + 1<<20 - 1) &^ (1<<20 - 1)
		p = max(p, need)
	}
	return min(p, MaxPartSize)
}

// bufPool recycles part buffers, one sync.Pool per part size.
type bufPool struct {
	mu    sync.Mutex
	pools map[int64]*sync.Pool
}

func (bp *bufPool) pool(size int64) *sync.Pool {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if bp.pools == nil {
		bp.pools = map[int64]*sync.Pool{}
	}
	p := bp.pools[size]
	if p == nil {
		p = &sync.Pool{New: func() any { b := make([]byte, size); return &b }}
		bp.pools[size] = p
	}
	return p
}

func (bp *bufPool) get(size int64) *[]byte { return bp.pool(size).Get().(*[]byte) }

func (bp *bufPool) put(b *[]byte) { bp.pool(int64(len(*b))).Put(b) }

// readPart fills buf from r. It returns the bytes read and whether r is
// exhausted; a short read is the end of the stream.
func readPart(r io.Reader, buf []byte) (int, bool, error) {
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return n, true, nil
	case err != nil:
		return n, false, err
	}
	return n, false, nil
}

// multipartUpload is one started multipart upload on a server.
type multipartUpload interface {
	// uploadPart uploads part number n (from 1); the SDK retries it.
	uploadPart(ctx context.Context, n int32, body []byte) (etag string, err error)
	// complete assembles the parts, given in order.
	complete(ctx context.Context, etags []string) error
	// abort discards the upload and its parts.
	abort(ctx context.Context) error
}

// streamer uploads one stream as a multipart upload, concurrency parts at a
// time, holding at most concurrency buffers of partSize.
type streamer struct {
	key         string
	size        int64 // declared size, checked before Complete; -1: unknown
	partSize    int64
	concurrency int
	pool        *bufPool
}

// upload streams the rest of r after first (a full part already read) into
// up, and completes it. On any error, including ctx's cancellation, it
// aborts the upload. It returns the number of bytes uploaded, first
// included.
func (s *streamer) upload(ctx context.Context, up multipartUpload, first *[]byte, r io.Reader) (total int64, err error) {
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer cancel()
			if aerr := up.abort(actx); aerr != nil {
				err = fmt.Errorf("%w (and aborting the upload: %w)", err, aerr)
			}
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	var (
		mu    sync.Mutex
		etags []string
	)
	// free holds the idle part buffers; at most concurrency exist, first
	// included, so sends to free never block.
	free := make(chan *[]byte, s.concurrency)
	allocated := 1
	send := func(n int32, buf *[]byte, length int) {
		g.Go(func() error {
			defer func() { free <- buf }()
			etag, err := up.uploadPart(gctx, n, (*buf)[:length])
			if err != nil {
				return fmt.Errorf("uploading part %d: %w", n, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if int(n) > len(etags) {
				etags = slices.Grow(etags, int(n)-len(etags))[:n]
			}
			etags[n-1] = etag
			return nil
		})
	}

	send(1, first, len(*first))
	total = int64(len(*first))
	var readErr error
	for part := int32(2); ; part++ {
		var buf *[]byte
		if allocated < s.concurrency {
			buf = s.pool.get(s.partSize)
			allocated++
		} else {
			select {
			case buf = <-free:
			case <-gctx.Done():
			}
		}
		if buf == nil {
			break // a part failed or ctx was cancelled; g.Wait reports it
		}
		n, eof, err := readPart(ctxReader{gctx, r}, *buf)
		if err != nil {
			free <- buf
			readErr = fmt.Errorf("reading part %d: %w", part, err)
			break
		}
		if n > 0 {
			if part > MaxParts {
				free <- buf
				readErr = fmt.Errorf("stream longer than %d parts of %d bytes; pass a larger ExpectedSize or PartSize", MaxParts, s.partSize)
				break
			}
			total += int64(n)
			send(part, buf, n)
		} else {
			free <- buf
		}
		if eof {
			break
		}
	}
	werr := g.Wait()
	// Every buffer is back in free now; recycle them.
	close(free)
	for b := range free {
		s.pool.put(b)
	}
	switch {
	case readErr != nil && (werr == nil || errors.Is(werr, context.Canceled) && ctx.Err() == nil):
		return total, readErr
	case werr != nil:
		return total, werr
	case ctx.Err() != nil:
		return total, ctx.Err()
	}
	if err := checkSize(s.key, s.size, total); err != nil {
		return total, err
	}
	for i, e := range etags {
		if e == "" {
			return total, fmt.Errorf("part %d has no ETag", i+1)
		}
	}
	if err := up.complete(ctx, etags); err != nil {
		return total, fmt.Errorf("completing multipart upload: %w", err)
	}
	return total, nil
}
