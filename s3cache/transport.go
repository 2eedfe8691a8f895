package s3cache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Network defaults: the global --connect-timeout, --stall-timeout and
// --retry-for of the CLI.
const (
	// DefaultConnectTimeout bounds a TCP connect (and TLS handshake).
	DefaultConnectTimeout = 5 * time.Second
	// DefaultStallTimeout is how long a request may move no byte, either
	// way, before the attempt is aborted and retried.
	DefaultStallTimeout = 30 * time.Second
	// DefaultRetryFor is how long one request keeps retrying transient
	// failures.
	DefaultRetryFor = 90 * time.Second
)

// StallError is the cause of an attempt aborted because no byte moved,
// either way, for the stall timeout: a server that accepts the connection
// and never answers, or a body that stops. The SDK retries it like a
// broken connection (Timeout and Temporary are true).
type StallError struct {
	// After is the stall timeout that passed.
	After time.Duration
	// Body is true when the response had begun: its body stalled.
	Body bool
}

// Error says how long nothing came: "no response in 30s" before the
// response, "no data in 30s" in its body.
func (e *StallError) Error() string {
	if e.Body {
		return fmt.Sprintf("no data in %v", e.After)
	}
	return fmt.Sprintf("no response in %v", e.After)
}

// Timeout reports true: a stall is a timeout.
func (e *StallError) Timeout() bool { return true }

// Temporary reports true: a stall is worth retrying.
func (e *StallError) Temporary() bool { return true }

// stallTransport aborts a request when no byte has moved for timeout:
// from the request's start until its response headers, every read of the
// request body (the bytes going out) restarts the clock; afterwards the
// clock runs only while the caller waits in a Read of the response body,
// so that a caller that reads slowly (serve, streaming to a slow client)
// is not mistaken for a stalled server.
type stallTransport struct {
	next    http.RoundTripper
	timeout time.Duration
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := &watchdog{after: t.timeout, cancel: cancel}
	w.timer = time.AfterFunc(t.timeout, w.fire)
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &watchedRequestBody{ReadCloser: req.Body, w: w}
		if get := req.GetBody; get != nil {
			req.GetBody = func() (io.ReadCloser, error) {
				rc, err := get()
				if err != nil {
					return nil, err
				}
				return &watchedRequestBody{ReadCloser: rc, w: w}, nil
			}
		}
	}
	resp, err := t.next.RoundTrip(req)
	w.timer.Stop()
	if err != nil {
		cancel()
		if w.stalled() {
			return nil, &StallError{After: t.timeout}
		}
		return nil, err
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w}
	return resp, nil
}

// watchdog cancels one request when its timer fires.
type watchdog struct {
	after  time.Duration
	cancel context.CancelFunc
	timer  *time.Timer

	mu  sync.Mutex
	hit bool // fired
}

func (w *watchdog) fire() {
	w.mu.Lock()
	w.hit = true
	w.mu.Unlock()
	w.cancel()
}

func (w *watchdog) stalled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hit
}

// watchedRequestBody restarts the clock at every read of the request body.
type watchedRequestBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *watchedRequestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.w.stalled() {
		b.w.timer.Reset(b.w.after)
	}
	return n, err
}

// watchedBody runs the clock during each Read of the response body.
type watchedBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if b.w.stalled() {
		return 0, &StallError{After: b.w.after, Body: true}
	}
	b.w.timer.Reset(b.w.after)
	n, err := b.ReadCloser.Read(p)
	b.w.timer.Stop()
	if err != nil && err != io.EOF && b.w.stalled() {
		return n, &StallError{After: b.w.after, Body: true}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.w.timer.Stop()
	err := b.ReadCloser.Close()
	b.w.cancel()
	return err
}
