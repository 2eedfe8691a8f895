package httpcache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// fakeCache is an HTTP binary cache in memory that records what it got,
// and fails the first failures requests with 503.
type fakeCache struct {
	mu       sync.Mutex
	objects  map[string][]byte
	failures int
	requests []string // "METHOD key user:password transfer-encoding"
}

func (f *fakeCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/cache/")
	user, password, _ := r.BasicAuth()
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+key+" "+user+":"+password+" "+strings.Join(r.TransferEncoding, ","))
	if f.failures > 0 {
		f.failures--
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	switch r.Method {
	case http.MethodPut:
		if key == "refused.narinfo" {
			http.Error(w, "refused.narinfo has no valid signature by a trusted key", http.StatusForbidden)
			return
		}
		f.objects[key] = body
	case http.MethodGet, http.MethodHead:
		data, ok := f.objects[key]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"e1"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	default:
		http.Error(w, "no", http.StatusMethodNotAllowed)
	}
}

// object returns what the cache holds at key, nil if nothing.
func (f *fakeCache) object(key string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[key]
}

func newFake(t *testing.T, failures int) (*fakeCache, *Bucket, *bytes.Buffer) {
	t.Helper()
	f := &fakeCache{objects: map[string][]byte{}, failures: failures}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	var log bytes.Buffer
	b, err := New(srv.URL+"/cache/", Options{User: "ci", Token: "the-push-token-0123456789", Logger: slog.New(slog.NewTextHandler(&log, nil)),
		Net: s3cache.S3Options{RetryFor: 10 * time.Second, MaxBackoff: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return f, b, &log
}

// onlyReader hides a reader's other methods (Seek, WriteTo, Len), as a
// stream of unknown length.
type onlyReader struct{ io.Reader }

func TestBucket(t *testing.T) {
	ctx := context.Background()
	f, b, _ := newFake(t, 0)
	if err := b.Put(ctx, "x.narinfo", strings.NewReader("narinfo"), 7, s3cache.PutOptions{ContentType: "text/x-nix-narinfo"}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("nar"), 1<<20)
	if err := b.Put(ctx, "nar/a.nar.xz", onlyReader{bytes.NewReader(big)}, -1, s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.object("nar/a.nar.xz"), big) {
		t.Fatalf("the streamed NAR arrived as %d bytes", len(f.object("nar/a.nar.xz")))
	}
	info, err := b.Stat(ctx, "nar/a.nar.xz")
	if err != nil || info.Size != int64(len(big)) || info.ETag != "e1" {
		t.Fatalf("Stat: %+v %v", info, err)
	}
	rc, err := b.Get(ctx, "x.narinfo")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "narinfo" {
		t.Fatalf("Get: %q", got)
	}
	if _, err := b.Stat(ctx, "missing.narinfo"); !errors.Is(err, s3cache.ErrNotFound) {
		t.Fatalf("Stat of a missing key: %v", err)
	}
	if _, err := b.Get(ctx, "missing.narinfo"); !errors.Is(err, s3cache.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	err = b.Put(ctx, "refused.narinfo", strings.NewReader("x"), 1, s3cache.PutOptions{})
	if !errors.Is(err, s3cache.ErrAccessDenied) || !strings.Contains(err.Error(), "no valid signature") {
		t.Fatalf("a refused PUT: %v", err)
	}
	if err := b.List(ctx, "", func(s3cache.ObjectInfo) error { return nil }); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("List: %v", err)
	}
	if err := b.Delete(ctx, "x.narinfo"); !errors.Is(err, ErrUnsupported) || f.object("x.narinfo") == nil {
		t.Fatalf("Delete: %v", err)
	}
	want := map[string]string{
		"PUT x.narinfo ci:the-push-token-0123456789 ":           "a PUT of known length",
		"PUT nar/a.nar.xz ci:the-push-token-0123456789 chunked": "a streamed PUT, chunked",
		"HEAD nar/a.nar.xz ci:the-push-token-0123456789 ":       "a HEAD",
	}
	f.mu.Lock()
	requests := slices.Clone(f.requests)
	f.mu.Unlock()
	for _, r := range requests {
		delete(want, r)
	}
	for r, what := range want {
		t.Errorf("no %s (%q) among %q", what, r, requests)
	}
	for _, e := range []error{err} {
		if strings.Contains(e.Error(), "the-push-token") {
			t.Errorf("an error names the token: %v", e)
		}
	}
}

// TestBucketRetries retries what may heal (503) with a WARN line each,
// a body it can send again included; a stream that was sent is not sent
// again.
func TestBucketRetries(t *testing.T) {
	ctx := context.Background()
	f, b, log := newFake(t, 2)
	if err := b.Put(ctx, "x.narinfo", strings.NewReader("narinfo"), 7, s3cache.PutOptions{}); err != nil {
		t.Fatalf("PUT after two 503s: %v", err)
	}
	if string(f.object("x.narinfo")) != "narinfo" {
		t.Fatalf("stored %q", f.object("x.narinfo"))
	}
	if n := strings.Count(log.String(), "retrying PUT x.narinfo at "); n != 2 {
		t.Errorf("%d retry lines, want 2: %s", n, log)
	}
	if strings.Contains(log.String(), "the-push-token") {
		t.Errorf("the log names the token: %s", log)
	}
	f.failures = 1
	err := b.Put(ctx, "nar/b.nar.xz", onlyReader{strings.NewReader("stream")}, -1, s3cache.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a failed stream: %v", err)
	}
	f.failures = 5
	if _, err := b.Stat(ctx, "x.narinfo"); err != nil {
		t.Fatalf("HEAD after 5 503s: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, raw := range []string{"ftp://host/x", "http://ci:secret@host/", "http:///x", "http://host/?compression=xz"} {
		if _, err := New(raw, Options{}); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%q): %v", raw, err)
		}
	}
}
