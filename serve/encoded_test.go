package serve_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
)

// TestEncodedNarInfo serves narinfos stored compressed (on MinIO with a
// Content-Encoding, in a file:// cache as a compressed file) decoded,
// without a Content-Encoding header, to GET, HEAD, Range and conditional
// requests alike.
func TestEncodedNarInfo(t *testing.T) {
	t.Parallel()
	const text = "StorePath: /nix/store/0f5ld286vw0q3rz0hh36gk47iv86m095-hello\nURL: nar/1.nar\nCompression: none\nNarSize: 8\n"
	key := "0f5ld286vw0q3rz0hh36gk47iv86m095.narinfo"
	srv := s3test.Start(t, s3test.MinIO)
	s3b := srv.Open(t, srv.Bucket)
	dir := t.TempDir()
	fb, err := s3cache.NewFileBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := s3test.Encode(t, "zstd", []byte(text))
	if err := s3b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentEncoding: "zstd"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, key), s3test.Encode(t, "xz", []byte(text)), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]s3cache.Bucket{"s3": s3b, "file": fb} {
		t.Run(name, func(t *testing.T) {
			web := httptest.NewServer(serve.Handler(b, nil))
			defer web.Close()
			get := func(method string, header ...string) (*http.Response, string) {
				t.Helper()
				req, _ := http.NewRequest(method, web.URL+"/"+key, nil)
				req.Header.Set("Accept-Encoding", "identity") // Go's client would otherwise ask for gzip
				for i := 0; i+1 < len(header); i += 2 {
					req.Header.Set(header[i], header[i+1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if ce := resp.Header.Get("Content-Encoding"); ce != "" {
					t.Errorf("%s %v: Content-Encoding %q, want none", method, header, ce)
				}
				return resp, string(body)
			}
			if resp, body := get(http.MethodGet); resp.StatusCode != http.StatusOK || body != text || resp.ContentLength != int64(len(text)) {
				t.Errorf("GET: %s, %d bytes %q; want 200 and the narinfo", resp.Status, resp.ContentLength, body)
			}
			if resp, _ := get(http.MethodHead); resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(text)) {
				t.Errorf("HEAD: %s, Content-Length %d; want 200, %d", resp.Status, resp.ContentLength, len(text))
			}
			if resp, body := get(http.MethodGet, "Range", "bytes=11-20"); resp.StatusCode != http.StatusPartialContent || body != text[11:21] {
				t.Errorf("GET Range bytes=11-20: %s, %q; want 206, %q", resp.Status, body, text[11:21])
			}
			resp, _ := get(http.MethodGet)
			if etag := resp.Header.Get("ETag"); etag != "" {
				if resp, _ := get(http.MethodGet, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
					t.Errorf("GET If-None-Match %s: %s, want 304", etag, resp.Status)
				}
			}
			if resp, body := get(http.MethodGet, "If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "StorePath: ") {
				t.Errorf("GET If-Modified-Since: %s, %q; want 200 and the narinfo", resp.Status, body)
			}
		})
	}
}
