package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
)

// object is one object put in the test bucket.
type object struct {
	key, contentType string
	data             []byte
}

func put(t *testing.T, b s3cache.Bucket, o object) {
	t.Helper()
	if err := b.Put(context.Background(), o.key, bytes.NewReader(o.data), int64(len(o.data)), s3cache.PutOptions{ContentType: o.contentType}); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func do(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, body
}

// TestHandler serves a bucket on a real S3 server (versitygw): GET and
// HEAD of the cache's files with Nix's media types and exact lengths; the
// bucket's other keys (release pages, locks, roots, stats) only with
// ServeAll; 404 for what is missing, 405 for writes (which change
// nothing), 502 with a generic body for a bucket that fails, the details
// in the log.
func TestHandler(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	narinfoText := "StorePath: /nix/store/0123456789abcdfghijklmnpqrsvwxyz-x\nURL: nar/1.nar.xz\n"
	cache := []object{
		{"nix-cache-info", "", []byte("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")},
		{"0123456789abcdfghijklmnpqrsvwxyz.narinfo", "", []byte(narinfoText)},
		{"0123456789abcdfghijklmnpqrsvwxyz.ls", "", []byte(`{"version":1}`)},
		{"nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz", "application/octet-stream", randomBytes(300<<10, 1)},
		{"nar/0z5r0pkgxy1r6pz6xfpcmg8mdz6ymqz4ffd8x3x2ssyg6pxbs1bz.nar", "", randomBytes(5, 2)},
		{"log/0123456789abcdfghijklmnpqrsvwxyz-x.drv", "", []byte("a log\n")},
		{"realisations/sha256:0123456789abcdfghijklmnpqrsvwxyz0123456789abcdfghij!out.doi", "application/json", []byte(`{}`)},
	}
	other := []object{
		{"_releases/v1.0/index.html", "text/html; charset=utf-8", []byte("<p>release</p>")},
		{"_releases/v1.0/notes.json", "", []byte(`{"a":1}`)},
		{"locks/push-host-1.json", "", []byte(`{"host":"ci-7","pid":4242}`)},
		{"roots/toolchain/2026-01-01T00:00:00Z-ab.json", "", []byte(`{"paths":[]}`)},
		{"stats/history.jsonl", "", []byte("{}\n")},
		{"empty", "", nil},
	}
	for _, o := range append(cache, other...) {
		put(t, b, o)
	}
	web := httptest.NewServer(serve.Handler(b, nil))
	defer web.Close()
	all := httptest.NewServer(serve.New(b, serve.Options{ServeAll: true}))
	defer all.Close()

	wantType := map[string]string{
		"nix-cache-info": "text/x-nix-cache-info",
		"0123456789abcdfghijklmnpqrsvwxyz.narinfo":                                        "text/x-nix-narinfo",
		"0123456789abcdfghijklmnpqrsvwxyz.ls":                                             "application/json",
		"nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz":                 "application/x-nix-nar",
		"nar/0z5r0pkgxy1r6pz6xfpcmg8mdz6ymqz4ffd8x3x2ssyg6pxbs1bz.nar":                    "application/x-nix-nar",
		"log/0123456789abcdfghijklmnpqrsvwxyz-x.drv":                                      "text/plain; charset=utf-8",
		"realisations/sha256:0123456789abcdfghijklmnpqrsvwxyz0123456789abcdfghij!out.doi": "application/json",
		"_releases/v1.0/index.html":                                                       "text/html; charset=utf-8",
		"_releases/v1.0/notes.json":                                                       "application/json",
		"locks/push-host-1.json":                                                          "application/json",
		"roots/toolchain/2026-01-01T00:00:00Z-ab.json":                                    "application/json",
		"stats/history.jsonl":                                                             "application/octet-stream",
		"empty":                                                                           "application/octet-stream",
	}
	served := func(t *testing.T, base string, o object) {
		get, body := do(t, http.MethodGet, base+"/"+o.key)
		if get.StatusCode != http.StatusOK || !bytes.Equal(body, o.data) {
			t.Fatalf("GET: %s, %d bytes; want 200 and the %d bytes put", get.Status, len(body), len(o.data))
		}
		head, hbody := do(t, http.MethodHead, base+"/"+o.key)
		if head.StatusCode != http.StatusOK || len(hbody) != 0 {
			t.Fatalf("HEAD: %s with %d bytes of body; want 200 and none", head.Status, len(hbody))
		}
		for name, r := range map[string]*http.Response{"GET": get, "HEAD": head} {
			if ct := r.Header.Get("Content-Type"); ct != wantType[o.key] {
				t.Errorf("%s: Content-Type %q, want %q", name, ct, wantType[o.key])
			}
			if cl := r.Header.Get("Content-Length"); cl != strconv.Itoa(len(o.data)) {
				t.Errorf("%s: Content-Length %q, want %d", name, cl, len(o.data))
			}
			if r.Header.Get("ETag") == "" || r.Header.Get("Last-Modified") == "" {
				t.Errorf("%s: no ETag or Last-Modified: %v", name, r.Header)
			}
		}
		if get.Header.Get("ETag") != head.Header.Get("ETag") {
			t.Errorf("GET and HEAD give ETags %s and %s", get.Header.Get("ETag"), head.Header.Get("ETag"))
		}
	}
	for _, o := range cache {
		t.Run(o.key, func(t *testing.T) { served(t, web.URL, o) })
	}
	for _, o := range other {
		t.Run(o.key, func(t *testing.T) {
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				if r, body := do(t, m, web.URL+"/"+o.key); r.StatusCode != http.StatusNotFound || (len(o.data) > 0 && bytes.Contains(body, o.data)) {
					t.Errorf("%s without ServeAll: %s, %q; want 404", m, r.Status, body)
				}
			}
			served(t, all.URL, o)
		})
	}

	t.Run("missing", func(t *testing.T) {
		for _, p := range []string{"/00000000000000000000000000000000.narinfo", "/nar/none.nar.xz", "/nar/", "/", "/_releases", "/nix-cache-info/"} {
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				r, _ := do(t, m, web.URL+p)
				if r.StatusCode != http.StatusNotFound {
					t.Errorf("%s %s: %s, want 404", m, p, r.Status)
				}
			}
		}
	})

	t.Run("writes refused", func(t *testing.T) {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			r, body := do(t, m, web.URL+"/nix-cache-info")
			if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s: %s, Allow %q; want 405 and GET, HEAD", m, r.Status, r.Header.Get("Allow"))
			}
			if !strings.Contains(string(body), "read-only") {
				t.Errorf("%s: body %q does not say the cache is read-only", m, body)
			}
		}
		if _, body := do(t, http.MethodGet, web.URL+"/nix-cache-info"); !bytes.Equal(body, cache[0].data) {
			t.Errorf("nix-cache-info changed after refused writes: %q", body)
		}
	})

	t.Run("bucket error", func(t *testing.T) {
		var log bytes.Buffer
		missing := "no-such-bucket-" + s3test.RandomHex(4)
		gone := httptest.NewServer(serve.New(srv.Open(t, missing), serve.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))}))
		defer gone.Close()
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r, body := do(t, m, gone.URL+"/nix-cache-info")
			if r.StatusCode != http.StatusBadGateway {
				t.Errorf("%s from a missing bucket: %s, want 502", m, r.Status)
			}
			leaks(t, m+" from a missing bucket", body, srv, missing)
		}
		if !strings.Contains(log.String(), missing) || !strings.Contains(log.String(), "does not exist") {
			t.Errorf("the log does not say which bucket does not exist:\n%s", log.String())
		}
	})
}

// leaks fails the test if body shows the S3 server's endpoint, the names
// of its buckets or its secret key.
func leaks(t *testing.T, what string, body []byte, srv *s3test.Server, buckets ...string) {
	t.Helper()
	for _, s := range append([]string{strings.TrimPrefix(srv.Endpoint, "http://"), srv.Bucket, srv.SecretKey, srv.AccessKey}, buckets...) {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("%s: the body shows %q: %q", what, s, body)
		}
	}
}

// openVia opens bucket on srv through proxy.
func openVia(t *testing.T, srv *s3test.Server, proxy *s3test.FaultProxy, bucket string) *s3cache.S3Bucket {
	t.Helper()
	u, err := s3cache.ParseURL("s3://" + bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region)
	if err != nil {
		t.Fatal(err)
	}
	opts := srv.Options()
	// Requests that fail are retried for a few seconds, not the default
	// 90: a test of failures waits for the client to give up.
	opts.RetryFor, opts.MaxBackoff = 3*time.Second, 500*time.Millisecond
	b, err := s3cache.OpenS3(context.Background(), u, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// raw sends one request with the request-URI exactly as given (no client
// cleans or escapes it) and returns the response and its body.
func raw(t *testing.T, addr, method, uri string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, uri, addr); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %.80s: %v", method, uri, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %.80s: reading the body: %v", method, uri, err)
	}
	return resp, body
}

// hostile are requests for keys outside the cache's layout, and the
// status each gets at once, without a request to the bucket.
var hostile = []struct {
	method, uri string
	status      int
}{
	{"GET", "/%00", 400},
	{"GET", "/%01", 400},
	{"GET", "/%7f", 400},
	{"GET", "/nix-cache-info%00", 400},
	{"GET", "/foo.narinfo%00", 400},
	{"GET", "/nar/x.nar%0a.xz", 400},
	{"GET", "/%ff%fe.narinfo", 400},
	{"GET", "/" + strings.Repeat("a", 2000) + ".narinfo", 400},
	{"GET", "/nar/" + strings.Repeat("a", 1100) + ".nar", 400},
	{"GET", "/../etc/passwd", 400},
	{"GET", "/nar/../locks/push-host-1.json", 400},
	{"GET", "/%2e%2e/", 400},
	{"GET", "/%2e%2e/%2e%2e/etc/passwd", 400},
	{"GET", "/./nix-cache-info", 400},
	{"GET", "/nar%2fx.nar", 400},
	{"GET", "/nar/..%2flocks%2fpush-host-1.json", 400},
	{"GET", "/nar/..%5c..%5clocks", 400},
	{"GET", "/nar\\x.nar", 400},
	{"HEAD", "/%00", 400},
	{"GET", "/locks/push-host-1.json", 404},
	{"GET", "/locks/", 404},
	{"GET", "/roots/", 404},
	{"GET", "/roots/toolchain/2026-01-01T00:00:00Z-ab.json", 404},
	{"GET", "/stats/", 404},
	{"GET", "/stats/history.jsonl", 404},
	{"HEAD", "/stats/history.jsonl", 404},
	{"GET", "/_releases/index.html", 404},
	{"GET", "/foo.narinfo", 404},
	{"GET", "/0123456789abcdfghijklmnpqrsvwxy.narinfo", 404},
	{"GET", "/nar/a/b.nar", 404},
	{"GET", "/nar/", 404},
	{"GET", "/", 404},
	{"GET", "//nix-cache-info", 404},
	{"GET", "/NIX-CACHE-INFO", 404},
	{"POST", "/nix-cache-info", 405},
	{"PUT", "/nar/x.nar", 405},
	{"DELETE", "/locks/push-host-1.json", 405},
	{"OPTIONS", "/nix-cache-info", 405},
}

// TestHostileRequests sends requests for keys outside the cache's layout
// to a handler over a real S3 server (versitygw, through a counting proxy):
// each gets its 400, 404 or 405 at once, the bucket sees no request for
// any of them, and no body names the endpoint, the bucket or a key. The
// locks, roots and stats do exist, and ServeAll serves them; malformed
// keys stay 400 with ServeAll too.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	b := openVia(t, srv, proxy, srv.Bucket)
	secret := []byte(`{"host":"ci-7","pid":4242}`)
	for _, o := range []object{
		{"nix-cache-info", "", []byte("StoreDir: /nix/store\n")},
		{"locks/push-host-1.json", "", secret},
		{"roots/toolchain/2026-01-01T00:00:00Z-ab.json", "", secret},
		{"stats/history.jsonl", "", secret},
		{"_releases/index.html", "", secret},
	} {
		put(t, b, o)
	}
	web := httptest.NewServer(serve.Handler(b, nil))
	defer web.Close()
	all := httptest.NewServer(serve.New(b, serve.Options{ServeAll: true}))
	defer all.Close()
	addr := strings.TrimPrefix(web.URL, "http://")

	var table strings.Builder
	for _, tc := range hostile {
		before := proxy.Requests()
		r, body := raw(t, addr, tc.method, tc.uri)
		fmt.Fprintf(&table, "%-7s %-48.48s %d\n", tc.method, tc.uri, r.StatusCode)
		if r.StatusCode != tc.status {
			t.Errorf("%s %.80s: %s, want %d", tc.method, tc.uri, r.Status, tc.status)
		}
		if n := proxy.Requests() - before; n != 0 {
			t.Errorf("%s %.80s: %d requests to the bucket, want none", tc.method, tc.uri, n)
		}
		leaks(t, tc.method+" "+tc.uri, body, srv)
		if bytes.Contains(body, secret) || bytes.Contains(body, []byte("locks")) {
			t.Errorf("%s %.80s: the body shows a key or an object: %q", tc.method, tc.uri, body)
		}
	}
	t.Logf("answers to hostile requests:\n%s", table.String())

	// The layout is the gate: the same keys exist, and ServeAll serves them.
	allAddr := strings.TrimPrefix(all.URL, "http://")
	for _, uri := range []string{"/locks/push-host-1.json", "/roots/toolchain/2026-01-01T00:00:00Z-ab.json", "/stats/history.jsonl", "/_releases/index.html"} {
		if r, body := raw(t, allAddr, "GET", uri); r.StatusCode != http.StatusOK || !bytes.Equal(body, secret) {
			t.Errorf("GET %s with ServeAll: %s, %q; want 200 and the object", uri, r.Status, body)
		}
	}
	for _, tc := range hostile {
		if tc.status != http.StatusBadRequest {
			continue
		}
		before := proxy.Requests()
		if r, _ := raw(t, allAddr, tc.method, tc.uri); r.StatusCode != http.StatusBadRequest || proxy.Requests() != before {
			t.Errorf("%s %.80s with ServeAll: %s and %d bucket requests; want 400 and none", tc.method, tc.uri, r.Status, proxy.Requests()-before)
		}
	}
}

// TestBackendFailure has the S3 server behind a proxy fail every request
// (500 InternalError, retried by the client until it gives up): the
// handler answers 502 with a generic body that names neither the endpoint
// nor the bucket, and the log has the details. The same holds when only
// the ranged GET of a Range request fails, after the HEAD that sized the
// object: a 502, not a 206 cut short.
func TestBackendFailure(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	isRanged := func(r *http.Request) bool { return r.Method == http.MethodGet && r.Header.Get("Range") != "" }
	proxy := s3test.NewFaultProxy(t, srv.Endpoint, s3test.Rule{Match: isRanged, Fault: s3test.InternalError, Times: 1000})
	b := openVia(t, srv, proxy, srv.Bucket)
	key := "nar/0z5r0pkgxy1r6pz6xfpcmg8mdz6ymqz4ffd8x3x2ssyg6pxbs1bz.nar"
	put(t, b, object{key: key, data: randomBytes(100<<10, 5)})
	var log bytes.Buffer
	web := httptest.NewServer(serve.New(b, serve.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))}))
	defer web.Close()

	req, _ := http.NewRequest(http.MethodGet, web.URL+"/"+key, nil)
	req.Header.Set("Range", "bytes=1000-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Range") != "" || resp.Header.Get("ETag") != "" {
		t.Errorf("Range request whose ranged GET fails: %s, %v; want 502 without the object's headers", resp.Status, resp.Header)
	}
	if proxy.Injected(0) == 0 {
		t.Errorf("the ranged GET was never sent")
	}
	leaks(t, "ranged GET failing", body, srv)

	dead := s3test.NewFaultProxy(t, srv.Endpoint, s3test.Rule{Fault: s3test.InternalError, Times: 1000})
	web2 := httptest.NewServer(serve.New(openVia(t, srv, dead, srv.Bucket), serve.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))}))
	defer web2.Close()
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r, body := do(t, m, web2.URL+"/nix-cache-info")
		if r.StatusCode != http.StatusBadGateway {
			t.Errorf("%s from a failing server: %s, want 502", m, r.Status)
		}
		leaks(t, m+" from a failing server", body, srv)
	}
	if !strings.Contains(log.String(), "InternalError") || !strings.Contains(log.String(), srv.Bucket) {
		t.Errorf("the log does not have the details:\n%s", log.String())
	}
}

// gatedBucket holds back the body of one key after its first open bytes
// until the test opens the gate.
type gatedBucket struct {
	*s3cache.S3Bucket
	key  string
	open int64
	gate chan struct{}
	read atomic.Int64 // bytes the handler read of the key
}

func (g *gatedBucket) GetWithInfo(ctx context.Context, key string) (io.ReadCloser, s3cache.ObjectInfo, error) {
	rc, info, err := g.S3Bucket.GetWithInfo(ctx, key)
	if err != nil || key != g.key {
		return rc, info, err
	}
	return &gatedReader{rc: rc, g: g}, info, nil
}

func (g *gatedBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := g.GetWithInfo(ctx, key)
	return rc, err
}

type gatedReader struct {
	rc io.ReadCloser
	g  *gatedBucket
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if n := r.g.read.Load(); n >= r.g.open {
		<-r.g.gate
	} else if int64(len(p)) > r.g.open-n {
		p = p[:r.g.open-n]
	}
	n, err := r.rc.Read(p)
	r.g.read.Add(int64(n))
	return n, err
}

func (r *gatedReader) Close() error { return r.rc.Close() }

// TestStreaming serves a 48 MiB NAR from a real S3 server while the
// bucket's reader holds back everything after its first MiB: the client
// must receive that MiB before the rest is read, which a handler that
// buffered the object could not do; then the whole NAR arrives intact.
func TestStreaming(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.MinIO)
	const size, open = 48 << 20, 1 << 20
	data := randomBytes(size, 3)
	key := "nar/big.nar.zst"
	base := srv.Open(t, srv.Bucket)
	put(t, base, object{key: key, data: data})
	g := &gatedBucket{S3Bucket: base, key: key, open: open, gate: make(chan struct{})}
	web := httptest.NewServer(serve.Handler(g, nil))
	defer web.Close()

	// A deadline, so that a handler that buffers fails the test instead
	// of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, web.URL+"/"+key, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v (the handler sent nothing before reading the whole object?)", key, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != size || resp.Header.Get("Content-Type") != "application/x-nix-nar" {
		t.Errorf("Content-Length %d, Content-Type %q; want %d, application/x-nix-nar", resp.ContentLength, resp.Header.Get("Content-Type"), size)
	}
	first := make([]byte, open/2)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("reading the first %d bytes while the bucket holds back the rest: %v (the handler buffers instead of streaming)", len(first), err)
	}
	if n := g.read.Load(); n > open {
		t.Fatalf("the handler read %d bytes past the gate", n)
	}
	close(g.gate)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := append(first, rest...)
	if len(got) != size || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("got %d bytes, not the %d put", len(got), size)
	}
}
