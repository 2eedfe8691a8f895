package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/publish"
	"github.com/nixbucket/nixbucket/s3cache"
)

// headRecorder is an HTTP transport that keeps the response headers of the
// last HEAD request it sent.
type headRecorder struct {
	mu   sync.Mutex
	last http.Header
}

func (h *headRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodHead {
		h.mu.Lock()
		h.last = resp.Header.Clone()
		h.mu.Unlock()
	}
	return resp, err
}

// headObject sends a real HEAD for key to the S3 server (through the SDK,
// signed) and returns the response's headers as the server sent them.
func headObject(t *testing.T, srv *s3test.Server, key string) http.Header {
	t.Helper()
	u, err := s3cache.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rec := &headRecorder{}
	b, err := s3cache.OpenS3(context.Background(), u, s3cache.S3Options{Credentials: srv.Credentials(), HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(context.Background(), key); err != nil {
		t.Fatalf("HEAD %s: %v", key, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.last
}

// TestPublishHeadersS3 publishes through the CLI to each real S3 server,
// with a custom --prefix, --base-url and --source-url, the version from a
// CI environment that sets both a commit and a tag, then checks with raw
// HEADs the Content-Type and Cache-Control of every object, and the links
// of the page and JSON.
func TestPublishHeadersS3(t *testing.T) {
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			clearCIEnv(t)
			srv := s3test.Start(t, kind)
			s3Env(t, srv)
			dir := t.TempDir()
			var files []string
			for _, name := range []string{"garage", "garage.tar.gz"} {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte("content of "+name), 0o755); err != nil {
					t.Fatal(err)
				}
				files = append(files, p)
			}
			// A mixed CI environment: the tag wins over the commit.
			t.Setenv("DRONE_COMMIT", testCommit)
			t.Setenv("CI_COMMIT_TAG", "v2.0.0")
			tgt := releaseTargets[0]
			out := mustCLI(t, append([]string{"publish", "binary", "--bucket", srv.URL, "--prefix", "dl/app", "--target", tgt}, files...)...)
			rel := "dl/app/v2.0.0/" + tgt + "/"
			for _, name := range []string{"garage", "garage.tar.gz"} {
				if !strings.Contains(out, "published "+rel+name+" (") {
					t.Errorf("publish binary printed %q, want %s published", out, rel+name)
				}
			}
			out = mustCLI(t, "publish", "index", "--bucket", srv.URL, "--prefix", "dl/app/", "--base-url", "https://dl.example.org",
				"--title", "App releases", "--source-url", "https://git.example.org/me/app/src/{type}/{version}",
				"--source-url", "tgz=https://git.example.org/me/app/archive/{version}.tar.gz")
			if !strings.Contains(out, "Release: 1 versions") || !strings.Contains(out, "wrote dl/app.json and dl/app.html") {
				t.Errorf("publish index printed %q", out)
			}

			for _, tc := range []struct{ key, ctype, cc string }{
				{rel + "garage", "application/octet-stream", publish.BinaryCacheControl},
				{rel + "garage.sha256", "text/plain; charset=utf-8", publish.BinaryCacheControl},
				{rel + "garage.tar.gz", "application/gzip", publish.BinaryCacheControl},
				{rel + "garage.tar.gz.sha256", "text/plain; charset=utf-8", publish.BinaryCacheControl},
				{"dl/app.json", "application/json", publish.IndexCacheControl},
				{"dl/app.html", "text/html; charset=utf-8", publish.IndexCacheControl},
			} {
				h := headObject(t, srv, tc.key)
				if got := h.Get("Content-Type"); got != tc.ctype {
					t.Errorf("%s: Content-Type %q, want %q", tc.key, got, tc.ctype)
				}
				if got := h.Get("Cache-Control"); got != tc.cc {
					t.Errorf("%s: Cache-Control %q, want %q", tc.key, got, tc.cc)
				}
			}

			b := srv.Open(t, srv.Bucket)
			html := string(readKey(t, b, "dl/app.html"))
			for _, s := range []string{
				"<title>App releases</title>",
				`href="https://dl.example.org/dl/app/v2.0.0/x86_64-unknown-linux-musl/garage"`,
				`href="https://dl.example.org/dl/app/v2.0.0/x86_64-unknown-linux-musl/garage.tar.gz.sha256"`,
				`Sources: <a href="https://git.example.org/me/app/src/tag/v2.0.0">source</a> · <a href="https://git.example.org/me/app/archive/v2.0.0.tar.gz">tgz</a>`,
			} {
				if !strings.Contains(html, s) {
					t.Errorf("the page has no %s", s)
				}
			}
			if n := len(regexp.MustCompile(`href="`).FindAllString(html, -1)); n != 6 {
				t.Errorf("%d links on the page, want 6 (2 binaries, 2 checksums, 2 sources)", n)
			}
			var ix publish.Index
			if err := json.Unmarshal(readKey(t, b, "dl/app.json"), &ix); err != nil {
				t.Fatal(err)
			}
			if len(ix[0].Builds) != 1 || ix[0].Builds[0].Version != "v2.0.0" || len(ix[0].Builds[0].Builds) != 2 ||
				ix[0].Builds[0].Builds[0].URL != "https://dl.example.org/dl/app/v2.0.0/x86_64-unknown-linux-musl/garage" ||
				ix[0].Builds[0].Builds[0].Root != "dl/app" || len(ix[0].Builds[0].Sources) != 2 {
				t.Errorf("dl/app.json: %+v", ix)
			}
			// Nothing went to the default prefix.
			if _, err := b.Stat(context.Background(), "_releases.json"); err == nil {
				t.Errorf("_releases.json written although --prefix was dl/app/")
			}
		})
	}
}
