package s3cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// resumingBody is the body of a GetObject. When a read fails mid-body
// (a stall, a reset, a connection closed early) it asks for the rest with
// a new GET (Range: bytes=N-, If-Match the first response's ETag), with
// backoff and jitter, until the stream has been retried for RetryFor; then
// Read fails with a RemoteError naming the endpoint. Once a resumed body
// has delivered resumeProgress bytes, the stream is healthy again: a later
// break starts a new RetryFor.
type resumingBody struct {
	ctx  context.Context
	b    *S3Bucket
	key  string
	etag string
	rc   io.ReadCloser
	off  int64 // bytes returned so far
	// since counts the bytes read since the last resume.
	since int64
	// first is when the first read failed; attempts counts the GETs.
	first    time.Time
	attempts int
	pending  error // a read error that came with data, returned next
	done     error // a final error or io.EOF
}

func (r *resumingBody) Read(p []byte) (int, error) {
	for {
		if r.done != nil {
			return 0, r.done
		}
		var err error
		if r.pending != nil {
			err, r.pending = r.pending, nil
		} else {
			var n int
			n, err = r.rc.Read(p)
			r.off += int64(n)
			r.since += int64(n)
			if r.since >= resumeProgress {
				r.first, r.attempts = time.Time{}, 0
			}
			if n > 0 {
				if err != nil && err != io.EOF {
					r.pending = err
				}
				return n, nil
			}
		}
		if err == nil {
			continue
		}
		if err == io.EOF {
			r.done = io.EOF
			return 0, io.EOF
		}
		if err := r.resume(err); err != nil {
			r.done = err
			return 0, err
		}
	}
}

// resume replaces the broken body with a GET of the rest, after a backoff;
// it returns the error to give the reader when it should not or cannot.
func (r *resumingBody) resume(cause error) error {
	if r.ctx.Err() != nil {
		return fmt.Errorf("reading %s: %w", r.key, r.ctx.Err())
	}
	if r.first.IsZero() {
		r.first = time.Now()
	}
	r.rc.Close()
	r.attempts++
	r.since = 0
	if time.Since(r.first) >= r.b.opts.RetryFor {
		return &RemoteError{Endpoint: r.b.where, cause: cause,
			msg: fmt.Sprintf("reading %s from bucket %q at %s: %s after %d bytes (gave up after %d attempts)",
				r.key, r.b.bucket, r.b.where, reason(cause), r.off, r.attempts)}
	}
	r.b.logger.WarnContext(r.ctx, fmt.Sprintf("retrying GET %s at %s: %s after %d bytes (attempt %d)",
		r.key, r.b.where, reason(cause), r.off, r.attempts+1))
	wait := min(time.Second<<min(r.attempts-1, 10), r.b.opts.MaxBackoff)
	t := time.NewTimer(rand.N(wait) + 1)
	select {
	case <-r.ctx.Done():
		t.Stop()
		return fmt.Errorf("reading %s: %w", r.key, r.ctx.Err())
	case <-t.C:
	}
	// The SDK's retries of this GET share the stream's RetryFor.
	ctx := context.WithValue(r.ctx, retryStartKey{}, r.first)
	rc, err := r.b.getFrom(ctx, r.key, r.etag, r.off)
	if err != nil {
		var remote *RemoteError
		if errors.As(err, &remote) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		// Gone or changed since the first response.
		return &RemoteError{Endpoint: r.b.where, cause: err,
			msg: fmt.Sprintf("reading %s from bucket %q at %s: %s after %d bytes, and resuming failed: %v",
				r.key, r.b.bucket, r.b.where, reason(cause), r.off, err)}
	}
	r.rc = rc
	return nil
}

func (r *resumingBody) Close() error { return r.rc.Close() }

// resumeProgress is how many bytes a resumed body must deliver before a
// break counts as a new failure rather than more of the same.
const resumeProgress = 1 << 20

// retryStartKey marks, in a context, when the retries of a stream began,
// so that a resuming GET does not start a RetryFor of its own.
type retryStartKey struct{}
