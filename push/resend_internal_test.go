package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/httpcache"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/store"
)

// breakingCache is an HTTP binary cache that drops the connection of
// the first breaks NAR PUTs once it has read part of their body, answers
// the others with status (0: stores them).
type breakingCache struct {
	mu      sync.Mutex
	breaks  int
	status  int
	puts    int
	objects map[string][]byte
}

func (c *breakingCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.puts++
	brk := c.breaks > 0
	c.breaks--
	status := c.status
	c.mu.Unlock()
	if brk {
		io.ReadFull(r.Body, make([]byte, 1024))
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	if status != 0 {
		http.Error(w, "refused", status)
		return
	}
	data, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.objects[strings.TrimPrefix(r.URL.Path, "/")] = data
	c.mu.Unlock()
}

// count returns the PUTs received and what is stored at key.
func (c *breakingCache) count(key string) (int, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts, c.objects[key]
}

// lockedBuffer is a bytes.Buffer that loggers of several goroutines
// share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// unreachableBucket fails every Put as an S3 bucket that gave up.
type unreachableBucket struct {
	*s3cache.MemBucket
	puts atomic.Int64
}

func (b *unreachableBucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts s3cache.PutOptions) error {
	b.puts.Add(1)
	io.Copy(io.Discard, r)
	return fmt.Errorf("PUT %s: %w", key, s3cache.ErrUnreachable)
}

// TestUploadNARResends makes NAR uploads through an http(s) cache whose
// connection drops midway (a ResendError): the upload is made again from
// the start, each time with a WARN line, at most maxNarResends times, and
// the push's counters count the bytes once; a refusal, and an S3
// bucket's unreachable error, are not retried.
func TestUploadNARResends(t *testing.T) {
	t.Parallel()
	path := nixtest.Build(t, nixtest.WriteExpr(t, `derivation { name = "resend-unit"; system = builtins.currentSystem; builder = "/bin/sh";
  PATH = "/usr/bin:/bin"; args = [ "-c" "mkdir $out; head -c 262144 /dev/urandom > $out/data" ]; }`))[0]
	ctx := context.Background()
	s, err := store.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := s.QueryPathInfo(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		breaks int
		status int
		s3     bool
		ok     bool
		puts   int
	}{
		{"one break", 1, 0, false, true, 2},
		{"always breaks", 100, 0, false, false, maxNarResends + 1},
		{"refused", 0, http.StatusForbidden, false, false, 1},
		{"S3 unreachable", 0, 0, true, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log lockedBuffer
			opts := Options{Compression: "zstd", Counters: new(Counters), Logger: slog.New(slog.NewTextHandler(&log, nil))}
			var b s3cache.Bucket
			c := &breakingCache{breaks: tc.breaks, status: tc.status, objects: map[string][]byte{}}
			ub := &unreachableBucket{MemBucket: s3cache.NewMemBucket()}
			if tc.s3 {
				b = ub
			} else {
				hs := httptest.NewServer(c)
				defer hs.Close()
				b, err = httpcache.New(hs.URL, httpcache.Options{Token: "t", Logger: slog.New(slog.NewTextHandler(&log, nil)),
					Net: s3cache.S3Options{RetryFor: time.Minute, MaxBackoff: 10 * time.Millisecond}})
				if err != nil {
					t.Fatal(err)
				}
			}
			ni, err := UploadNAR(ctx, b, info, opts)
			cachePuts, _ := c.count("")
			puts := cachePuts + int(ub.puts.Load())
			if (err == nil) != tc.ok || puts != tc.puts {
				t.Fatalf("UploadNAR: %v after %d PUTs; want ok %v after %d", err, puts, tc.ok, tc.puts)
			}
			if n := strings.Count(log.String(), "again from the start"); n != tc.puts-1 {
				t.Errorf("%d WARN lines of a resend, want %d: %s", n, tc.puts-1, log.String())
			}
			var re *httpcache.ResendError
			if !tc.ok && !tc.s3 && tc.status == 0 && (!errors.As(err, &re) || !errors.Is(err, s3cache.ErrUnreachable)) {
				t.Errorf("the last error %v is not the ResendError, unreachable", err)
			}
			if !tc.ok {
				return
			}
			if _, got := c.count(ni.URL); int64(len(got)) != int64(ni.FileSize) {
				t.Errorf("the cache holds %d bytes of %s, the narinfo says %d", len(got), ni.URL, ni.FileSize)
			}
			if n := opts.Counters.NarBytes.Load(); n != int64(info.NarSize) {
				t.Errorf("Counters.NarBytes = %d after a resend, want the NAR's %d once", n, info.NarSize)
			}
			if n := opts.Counters.FileBytes.Load(); n != int64(ni.FileSize) {
				t.Errorf("Counters.FileBytes = %d after a resend, want %d once", n, ni.FileSize)
			}
		})
	}
}
