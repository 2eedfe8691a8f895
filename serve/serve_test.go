package serve_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
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
// HEAD of the cache's files and others with Nix's media types and exact
// lengths, 404 for what is missing, 405 for writes (which change nothing),
// 502 for a bucket that fails.
func TestHandler(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	narinfoText := "StorePath: /nix/store/0123456789abcdfghijklmnpqrsvwxyz-x\nURL: nar/1.nar.xz\n"
	objects := []object{
		{"nix-cache-info", "", []byte("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")},
		{"0123456789abcdfghijklmnpqrsvwxyz.narinfo", "", []byte(narinfoText)},
		{"nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz", "application/octet-stream", randomBytes(300<<10, 1)},
		{"nar/0z5r0pkgxy1r6pz6xfpcmg8mdz6ymqz4ffd8x3x2ssyg6pxbs1bz.nar", "", randomBytes(5, 2)},
		{"_releases/v1.0/index.html", "text/html; charset=utf-8", []byte("<p>release</p>")},
		{"_releases/v1.0/notes.json", "", []byte(`{"a":1}`)},
		{"logs/build-output", "", []byte("a log\n")},
		{"empty", "", nil},
	}
	for _, o := range objects {
		put(t, b, o)
	}
	web := httptest.NewServer(serve.Handler(b, nil))
	defer web.Close()

	wantType := map[string]string{
		"nix-cache-info": "text/x-nix-cache-info",
		"0123456789abcdfghijklmnpqrsvwxyz.narinfo":                        "text/x-nix-narinfo",
		"nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz": "application/x-nix-nar",
		"nar/0z5r0pkgxy1r6pz6xfpcmg8mdz6ymqz4ffd8x3x2ssyg6pxbs1bz.nar":    "application/x-nix-nar",
		"_releases/v1.0/index.html":                                       "text/html; charset=utf-8",
		"_releases/v1.0/notes.json":                                       "application/json",
		"logs/build-output":                                               "application/octet-stream",
		"empty":                                                           "application/octet-stream",
	}
	for _, o := range objects {
		t.Run(o.key, func(t *testing.T) {
			get, body := do(t, http.MethodGet, web.URL+"/"+o.key)
			if get.StatusCode != http.StatusOK || !bytes.Equal(body, o.data) {
				t.Fatalf("GET: %s, %d bytes; want 200 and the %d bytes put", get.Status, len(body), len(o.data))
			}
			head, hbody := do(t, http.MethodHead, web.URL+"/"+o.key)
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
		})
	}

	t.Run("missing", func(t *testing.T) {
		for _, p := range []string{"/00000000000000000000000000000000.narinfo", "/nar/none.nar.xz", "/nar/", "/", "/_releases", "/../nix-cache-info/"} {
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
		if _, body := do(t, http.MethodGet, web.URL+"/nix-cache-info"); !bytes.Equal(body, objects[0].data) {
			t.Errorf("nix-cache-info changed after refused writes: %q", body)
		}
	})

	t.Run("bucket error", func(t *testing.T) {
		gone := httptest.NewServer(serve.Handler(srv.Open(t, "no-such-bucket-"+s3test.RandomHex(4)), nil))
		defer gone.Close()
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r, body := do(t, m, gone.URL+"/nix-cache-info")
			if r.StatusCode != http.StatusBadGateway {
				t.Errorf("%s from a missing bucket: %s, want 502", m, r.Status)
			}
			if m == http.MethodGet && (!strings.Contains(string(body), "does not exist") || strings.Count(string(body), "\n") != 1) {
				t.Errorf("%s from a missing bucket: body %q, want one line saying the bucket does not exist", m, body)
			}
			if strings.Contains(string(body), srv.SecretKey) {
				t.Errorf("the error shows the secret key")
			}
		}
	})
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
