package serve_test

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
)

// curl runs curl with args and returns the status and headers of the
// (last) response and the body, which it writes to out ("" for a
// temporary file).
func curl(t *testing.T, out string, args ...string) (int, http.Header, []byte) {
	t.Helper()
	dir := t.TempDir()
	if out == "" {
		out = filepath.Join(dir, "body")
	}
	headers := filepath.Join(dir, "headers")
	cmd := exec.Command("curl", append([]string{"-sS", "-D", headers, "-o", out}, args...)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl %v: %v: %s", args, err, msg)
	}
	hd, err := os.ReadFile(headers)
	if err != nil {
		t.Fatal(err)
	}
	// With -C -, curl may dump more than one response; the last counts.
	if i := bytes.LastIndex(hd, []byte("HTTP/")); i > 0 {
		hd = hd[i:]
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(hd)), &http.Request{Method: http.MethodHead})
	if err != nil {
		t.Fatalf("curl %v: the headers %q: %v", args, hd, err)
	}
	body, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// TestHTTPSemantics checks with curl what Nix and curl rely on, over a
// bucket on a real S3 server (versitygw, through a counting proxy) and a
// file:// bucket: Range requests (206 with Content-Range, a suffix range,
// a download cut short and resumed with -C -, 416 past the end, several
// ranges answered whole), Accept-Ranges, ETag and Last-Modified with
// If-None-Match and If-Modified-Since answered 304 without reading the
// object, and Cache-Control: NARs immutable for a year, narinfos and
// nix-cache-info a minute.
func TestHTTPSemantics(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	fb, err := s3cache.NewFileBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const narKey = "nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz"
	nar := randomBytes(3<<20+17, 4)
	size := strconv.Itoa(len(nar))
	isNarGet := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, narKey)
	}
	for _, tc := range []struct {
		name string
		b    s3cache.Bucket
		etag bool
	}{{"s3", openVia(t, srv, proxy, srv.Bucket), true}, {"file", fb, false}} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, tc.b, object{key: narKey, data: nar})
			put(t, tc.b, object{key: "0123456789abcdfghijklmnpqrsvwxyz.narinfo", data: []byte("StorePath: x\n")})
			put(t, tc.b, object{key: "nix-cache-info", data: []byte("StoreDir: /nix/store\n")})
			web := httptest.NewServer(serve.Handler(tc.b, nil))
			defer web.Close()
			u := web.URL + "/" + narKey

			status, hd, body := curl(t, "", u)
			if status != 200 || !bytes.Equal(body, nar) {
				t.Fatalf("GET: %d, %d bytes; want 200 and the NAR", status, len(body))
			}
			if hd.Get("Accept-Ranges") != "bytes" {
				t.Errorf("GET: Accept-Ranges %q, want bytes", hd.Get("Accept-Ranges"))
			}
			if cc := hd.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
				t.Errorf("NAR: Cache-Control %q, want immutable for a year", cc)
			}
			etag, lastMod := hd.Get("ETag"), hd.Get("Last-Modified")
			if (etag != "") != tc.etag || lastMod == "" {
				t.Errorf("GET: ETag %q, Last-Modified %q", etag, lastMod)
			}
			for _, key := range []string{"0123456789abcdfghijklmnpqrsvwxyz.narinfo", "nix-cache-info"} {
				if _, hd, _ := curl(t, "", web.URL+"/"+key); hd.Get("Cache-Control") != "public, max-age=60" {
					t.Errorf("%s: Cache-Control %q, want a minute", key, hd.Get("Cache-Control"))
				}
			}

			status, hd, body = curl(t, "", "-r", "1000-1999", u)
			if status != 206 || !bytes.Equal(body, nar[1000:2000]) || hd.Get("Content-Range") != "bytes 1000-1999/"+size {
				t.Errorf("-r 1000-1999: %d, %d bytes, Content-Range %q; want 206 and those bytes", status, len(body), hd.Get("Content-Range"))
			}
			status, _, body = curl(t, "", "-r", "-500", u)
			if status != 206 || !bytes.Equal(body, nar[len(nar)-500:]) {
				t.Errorf("-r -500: %d, %d bytes; want 206 and the last 500", status, len(body))
			}
			status, _, body = curl(t, "", "-r", "0-9,100-109", u)
			if status != 200 || !bytes.Equal(body, nar) {
				t.Errorf("two ranges: %d, %d bytes; want 200 and the whole NAR", status, len(body))
			}
			status, hd, _ = curl(t, "", "-r", size+"-", u)
			if status != 416 || hd.Get("Content-Range") != "bytes */"+size {
				t.Errorf("-r %s-: %d, Content-Range %q; want 416", size, status, hd.Get("Content-Range"))
			}

			// A download cut short after 1 MiB and 3 bytes, resumed.
			partial := filepath.Join(t.TempDir(), "nar")
			if err := os.WriteFile(partial, nar[:1<<20+3], 0o644); err != nil {
				t.Fatal(err)
			}
			ranged := proxy.Count(func(r *http.Request) bool { return isNarGet(r) && r.Header.Get("Range") != "" })
			status, _, body = curl(t, partial, "-C", "-", u)
			if status != 206 || !bytes.Equal(body, nar) {
				t.Errorf("resumed with -C -: %d, the file has %d bytes; want 206 and the whole NAR", status, len(body))
			}
			if tc.name == "s3" && proxy.Count(func(r *http.Request) bool { return isNarGet(r) && r.Header.Get("Range") != "" }) == ranged {
				t.Errorf("the resumed download did not read the bucket with a ranged GET")
			}

			gets := proxy.Count(isNarGet)
			conditions := [][]string{{"-H", "If-Modified-Since: " + lastMod}}
			if tc.etag {
				conditions = append(conditions, []string{"-H", "If-None-Match: " + etag}, []string{"-H", `If-None-Match: "other", ` + etag})
			}
			for _, c := range conditions {
				status, hd, body = curl(t, "", append(c, u)...)
				if status != 304 || len(body) != 0 {
					t.Errorf("%v: %d with %d bytes; want 304 and none", c, status, len(body))
				}
				if hd.Get("Cache-Control") == "" || (tc.etag && hd.Get("ETag") != etag) {
					t.Errorf("%v: 304 without Cache-Control or ETag: %v", c, hd)
				}
			}
			if tc.name == "s3" && proxy.Count(isNarGet) != gets {
				t.Errorf("304s read the NAR from the bucket: %d GETs", proxy.Count(isNarGet)-gets)
			}
			if tc.etag {
				status, _, body = curl(t, "", "-H", `If-None-Match: "other"`, u)
				if status != 200 || !bytes.Equal(body, nar) {
					t.Errorf("If-None-Match of another ETag: %d, %d bytes; want 200 and the NAR", status, len(body))
				}
				status, _, body = curl(t, "", "-H", `If-Range: "other"`, "-r", "0-9", u)
				if status != 200 || !bytes.Equal(body, nar) {
					t.Errorf("If-Range of another ETag: %d, %d bytes; want 200 and the whole NAR", status, len(body))
				}
			}
		})
	}
}
