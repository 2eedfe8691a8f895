package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/stats"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestServeMetrics runs `nixbucket serve --metrics-listen 127.0.0.1:0`
// over a closure pushed to MinIO: it says where its metrics are after the
// line saying where it serves; after requests of the test's own (404s for
// missing narinfos, a GET, a HEAD) /metrics passes promtool's check and
// counts exactly those, by method, kind of key and status, with the body
// bytes the test received and bucket latencies of the operations they
// needed; after real Nix substituted the closure through serve, it counts
// a NAR GET per path and the bytes of those NARs.
func TestServeMetrics(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-serve-metrics")
	app := nixtest.Build(t, f, "app")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", app)
	key, _ := signing.GenerateSecretKey("cli-serve-metrics-1")
	srv := s3test.Start(t, s3test.MinIO)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	if code, _, stderr := runBin(t, env, "push", "--cache", srv.URL, app); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	u, err := s3cache.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	cache := stats.CacheLabel(u)

	sv := startServe(t, creds(srv), "--cache", srv.URL, "--metrics-listen", "127.0.0.1:0")
	base, metricsURL := sv.base, sv.metrics

	scrape := func() string {
		t.Helper()
		body := scrapeMetrics(t, metricsURL)
		promtoolCheck(t, "serve's /metrics", body)
		if strings.Contains(body, srv.SecretKey) {
			t.Fatalf("serve's metrics have the AWS secret")
		}
		return body
	}
	scrape() // before any request: still valid

	// The test's own requests, and the body bytes it received by kind.
	received := map[string]int{}
	do := func(method, path string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s, want %d", method, path, resp.Status, want)
		}
		received[string(layout.KindOf(strings.TrimPrefix(path, "/")))] += len(body)
	}
	const missing = 3
	for i := range missing {
		do(http.MethodGet, "/"+strings.Repeat(string(layout.HashAlphabet[i]), 32)+".narinfo", http.StatusNotFound)
	}
	do(http.MethodGet, "/nix-cache-info", http.StatusOK)
	do(http.MethodHead, "/"+storepath.HashPart(app)+".narinfo", http.StatusOK)
	do(http.MethodGet, "/roots/", http.StatusNotFound) // outside the layout: no bucket request

	fams := promFamilies(t, scrape())
	labelEverywhere(t, fams, "nixbucket_", "cache", cache)
	const requests = "nixbucket_serve_requests_total"
	wantValue(t, fams, missing, requests, "method=GET", "kind=narinfo", "code=404")
	wantValue(t, fams, 1, requests, "method=GET", "kind=cache-info", "code=200")
	wantValue(t, fams, 1, requests, "method=HEAD", "kind=narinfo", "code=200")
	wantValue(t, fams, 1, requests, "method=GET", "kind=root", "code=404")
	var total float64
	for _, m := range fams[requests].GetMetric() {
		total += m.GetCounter().GetValue()
	}
	if total != missing+3 {
		t.Errorf("%s sums to %v, want the test's %d requests", requests, total, missing+3)
	}
	for kind, n := range received {
		wantValue(t, fams, float64(n), "nixbucket_serve_response_bytes_total", "kind="+kind)
	}
	for _, op := range []string{"get", "head"} {
		if n := promValue(t, fams, "nixbucket_serve_backend_request_duration_seconds", "operation="+op); n == 0 {
			t.Errorf("no bucket %s timed", op)
		}
	}
	// 3 missing narinfos and nix-cache-info (GETs), the narinfo's HEAD.
	wantValue(t, fams, missing+1, "nixbucket_serve_backend_request_duration_seconds", "operation=get")
	wantValue(t, fams, 1, "nixbucket_serve_backend_request_duration_seconds", "operation=head")
	wantValue(t, fams, 0, "nixbucket_serve_requests_in_flight")

	// Real Nix substitutes the closure: a NAR GET per path, and their bytes.
	narsBefore := promValue(t, fams, requests, "method=GET", "kind=nar", "code=200")
	bytesBefore := promValue(t, fams, "nixbucket_serve_response_bytes_total", "kind=nar")
	root, err := nixtest.Substitute(t, base, key.PublicKey().String(), closure)
	if err != nil {
		t.Fatalf("nix could not substitute through nixbucket serve: %v", err)
	}
	nixtest.AssertInStore(t, root, closure)
	var narBytes float64
	b := srv.Open(t, srv.Bucket)
	for _, p := range closure {
		data, err := s3cache.ReadSmall(context.Background(), b, layout.NarInfoKeyOf(p), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		ni, err := narinfo.ParseString(string(data))
		if err != nil {
			t.Fatal(err)
		}
		narBytes += float64(ni.FileSize)
	}
	fams = promFamilies(t, scrape())
	if got := promValue(t, fams, requests, "method=GET", "kind=nar", "code=200") - narsBefore; got != float64(len(closure)) {
		t.Errorf("%v NAR GETs answered 200 while Nix substituted %d paths", got, len(closure))
	}
	if got := promValue(t, fams, "nixbucket_serve_response_bytes_total", "kind=nar") - bytesBefore; got != narBytes {
		t.Errorf("%v NAR bytes served, the closure's NARs are %v bytes", got, narBytes)
	}
	if n := promValue(t, fams, requests, "method=GET", "kind=narinfo", "code=200"); n < float64(len(closure)) {
		t.Errorf("%v narinfo GETs answered 200, fewer than the %d paths Nix substituted", n, len(closure))
	}

	if err := sv.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sv.exited:
		if err != nil {
			t.Errorf("serve after SIGINT: %v; stderr %q", err, sv.Stderr())
		}
	case <-time.After(time.Minute):
		t.Fatalf("serve did not stop within a minute of SIGINT")
	}

	// A metrics address that cannot be listened on is a usage error.
	code, out, errOut := runBin(t, creds(srv), "serve", "--cache", srv.URL, "--listen", "127.0.0.1:0", "--metrics-listen", "nowhere")
	if code != exitUsage || out != "" || !strings.Contains(errOut, "--metrics-listen") {
		t.Errorf("serve --metrics-listen nowhere: exit %d, stdout %q, stderr %q; want a usage error", code, out, errOut)
	}
	oneErrorLine(t, errOut)
}
