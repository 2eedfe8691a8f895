package httpcache

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/s3cache"
)

// failingReader yields some bytes, then fails as a compressor that found
// the store's files changed.
type failingReader struct{ n int }

var errReader = errors.New("the NAR on disk changed")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errReader
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

// TestResendError tells a stream that broke off transiently (which the
// caller may send again) from one the server refused and one whose own
// reader failed: only the first is a ResendError; all keep their kind.
func TestResendError(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		key      string
		body     io.Reader
		failures int
		resend   bool
		kind     error
	}{
		{"503 to a stream", "nar/b.nar.xz", onlyReader{strings.NewReader("stream")}, 1, true, s3cache.ErrUnreachable},
		{"refused stream", "refused.narinfo", onlyReader{strings.NewReader("stream")}, 0, false, s3cache.ErrAccessDenied},
		{"reader failed", "nar/c.nar.xz", &failingReader{n: 100}, 0, false, s3cache.ErrUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, b, _ := newFake(t, tc.failures)
			err := b.Put(ctx, tc.key, tc.body, -1, s3cache.PutOptions{})
			var re *ResendError
			if errors.As(err, &re) != tc.resend || !errors.Is(err, tc.kind) {
				t.Fatalf("Put: %v; want a ResendError %v, wrapping %v", err, tc.resend, tc.kind)
			}
			if tc.resend && re.RetryFor != b.opts.Net.RetryFor {
				t.Errorf("ResendError.RetryFor = %v, want the bucket's %v", re.RetryFor, b.opts.Net.RetryFor)
			}
			// The server may still be reading the body the client gave
			// up on: its handler holds mu while it records the request.
			f.mu.Lock()
			n := len(f.requests)
			f.mu.Unlock()
			if n > 1 {
				t.Errorf("%d requests: a stream was sent again", n)
			}
		})
	}
}
