package httpcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// do sends one request, retried while it fails transiently, for at most
// RetryFor, and as long as its body (if any) can be sent again. A
// response other than 2xx is an error: wrapping s3cache.ErrNotFound for
// 404, s3cache.ErrAccessDenied for 401 and 403, and carrying the
// server's one-line reason for the other refusals.
func (b *Bucket) do(ctx context.Context, method, key string, body *countingReader, size int64, opts s3cache.PutOptions) (*http.Response, error) {
	start := time.Now()
	var seeker io.Seeker
	if body != nil {
		seeker, _ = body.r.(io.Seeker)
	}
	for attempt := 1; ; attempt++ {
		resp, err := b.once(ctx, method, key, body, size, opts)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, key, ctx.Err())
		}
		var st *statusError
		retry := transient(err)
		resend := false // a stream, part sent: the caller may send it again
		var sent int64
		if body != nil {
			n, _, rerr := body.state()
			sent = n
			if sent > 0 {
				resend = retry && seeker == nil && rerr == nil
				retry = retry && seeker != nil
			}
		}
		if !retry || time.Since(start) >= b.opts.Net.RetryFor {
			ferr := b.fail(method, key, err, attempt)
			if resend {
				return nil, &ResendError{err: ferr, RetryFor: b.opts.Net.RetryFor}
			}
			return nil, ferr
		}
		if sent > 0 {
			if err := body.rewind(seeker); err != nil {
				return nil, b.fail(method, key, err, attempt)
			}
		}
		reason := err.Error()
		if errors.As(err, &st) {
			reason = st.short()
		}
		b.log.WarnContext(ctx, fmt.Sprintf("retrying %s %s at %s: %s (attempt %d)", method, key, b.where, reason, attempt+1))
		pause := min(b.opts.Net.MaxBackoff, 100*time.Millisecond<<min(attempt-1, 10))
		pause = pause/2 + rand.N(pause/2+1)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, fmt.Errorf("%s %s: %w", method, key, ctx.Err())
		}
	}
}

// once makes one attempt. It returns once the transport is done with
// the body (attemptBody.done).
func (b *Bucket) once(ctx context.Context, method, key string, body *countingReader, size int64, opts s3cache.PutOptions) (*http.Response, error) {
	var rd io.Reader
	var ab *attemptBody
	if body != nil {
		ab = newAttemptBody(body)
		defer ab.done(ctx)
		rd = ab
	}
	req, err := http.NewRequestWithContext(ctx, method, b.keyURL(key), rd)
	if err != nil {
		if ab != nil {
			ab.Close()
		}
		return nil, err
	}
	if body != nil {
		req.ContentLength = size // -1: chunked
		if size == 0 {
			req.Body = http.NoBody
			ab.Close() // not the transport's to close
		}
		req.GetBody = nil
		ct := opts.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		req.Header.Set("Content-Type", ct)
		if opts.ContentEncoding != "" {
			req.Header.Set("Content-Encoding", opts.ContentEncoding)
		}
	}
	if b.opts.Token != "" {
		req.SetBasicAuth(b.opts.User, b.opts.Token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	return nil, &statusError{code: resp.StatusCode, msg: oneLine(string(msg))}
}

// statusError is an answer other than 2xx.
type statusError struct {
	code int
	msg  string // the server's reason, one line
}

func (e *statusError) short() string { return fmt.Sprintf("HTTP %d", e.code) }

func (e *statusError) Error() string {
	if e.msg == "" || strings.EqualFold(e.msg, http.StatusText(e.code)) {
		return fmt.Sprintf("HTTP %d %s", e.code, http.StatusText(e.code))
	}
	return fmt.Sprintf("HTTP %d: %s", e.code, e.msg)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

// transient reports whether err may heal by retrying: 5xx and 429
// answers, broken connections (a connection the transport closed when it
// read that the peer had gone is net.ErrClosed to the body's writer),
// stalls.
func transient(err error) bool {
	var st *statusError
	if errors.As(err, &st) {
		return st.code >= 500 || st.code == http.StatusTooManyRequests
	}
	var stall *s3cache.StallError
	return errors.As(err, &stall) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || isTimeout(err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// fail is the error of a request that will not be retried: one line
// naming the request and the server.
func (b *Bucket) fail(method, key string, err error, attempts int) error {
	var st *statusError
	after := ""
	if attempts > 1 {
		after = fmt.Sprintf(" (after %d attempts)", attempts)
	}
	if errors.As(err, &st) {
		switch st.code {
		case http.StatusNotFound:
			return fmt.Errorf("%s %s at %s: %w", method, key, b.where, s3cache.ErrNotFound)
		case http.StatusUnauthorized:
			return fmt.Errorf("%s %s at %s: %v: the server wants the push token (NIXBUCKET_PUSH_TOKEN or --netrc-file): %w", method, key, b.where, err, s3cache.ErrAccessDenied)
		case http.StatusForbidden:
			return fmt.Errorf("%s %s at %s: %v: %w", method, key, b.where, err, s3cache.ErrAccessDenied)
		}
		if st.code < 500 {
			return fmt.Errorf("%s %s at %s: %v: %w", method, key, b.where, err, errRefused)
		}
	}
	return fmt.Errorf("%s %s at %s: %v%s: %w", method, key, b.where, err, after, s3cache.ErrUnreachable)
}

// errRefused marks a 4xx answer other than 401, 403 and 404: the server
// refused what was sent (a narinfo it could not vouch for, a key outside
// the cache's layout). It is an s3cache.ErrAccessDenied: retrying does
// not heal it.
var errRefused = fmt.Errorf("the server refused the request: %w", s3cache.ErrAccessDenied)
