//go:build bench

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
)

// TestSignAllTiming times `sign --all` on the benchmark corpus's dag (2001
// small paths, $NIXBUCKET_CORPUS, default ../../../shared/bench/corpus.nix)
// pushed with key A to a real MinIO: once signing every narinfo with B
// trusting A, once more with nothing to change. It only logs the times
// and request counts; it is built with -tags bench:
//
//	go test -tags bench -run TestSignAllTiming -v ./cmd/nixbucket/
func TestSignAllTiming(t *testing.T) {
	corpus := os.Getenv("NIXBUCKET_CORPUS")
	if corpus == "" {
		corpus = "../../../shared/bench/corpus.nix"
	}
	corpus, _ = filepath.Abs(corpus)
	dag := nixtest.Build(t, corpus, "dag")[0]
	n := len(nixtest.Lines(t, "nix-store", "-qR", dag))
	dir := t.TempDir()
	a, aFile := writeKey(t, dir, "bench-a-1")
	_, bFile := writeKey(t, dir, "bench-b-1")
	srv := s3test.Start(t, s3test.MinIO)
	u := srv.StoreURL(srv.NewBucket(t))
	env := creds(srv)
	if code, _, stderr := runBin(t, env, "push", "--cache", u, "--secret-key-file", aFile, dag); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	// sign goes through a proxy that counts its requests.
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	viaProxy := strings.Replace(u, "endpoint="+srv.Endpoint, "endpoint="+proxy.URL, 1)
	for _, what := range []string{"signs every narinfo", "changes nothing"} {
		counts := map[string]int{}
		for _, m := range []string{"GET", "PUT", "HEAD", "DELETE"} {
			counts[m] = proxy.Count(s3test.IsMethod(m))
		}
		start := time.Now()
		res, out := signResult(t, env, 0, "--cache", viaProxy, "--all", "--secret-key-file", bFile, "--trusted-public-key", a.PublicKey().String())
		d := time.Since(start)
		if res.NarInfos != n {
			t.Fatalf("sign read %d narinfos of %d: %s", res.NarInfos, n, out)
		}
		var reqs []string
		for _, m := range []string{"GET", "PUT", "HEAD", "DELETE"} {
			reqs = append(reqs, fmt.Sprintf("%s %d", m, proxy.Count(s3test.IsMethod(m))-counts[m]))
		}
		t.Logf("sign --all on %d narinfos, %s: %v; requests (GET includes LIST): %s; signed %d, rewritten %d, unchanged %d",
			n, what, d.Round(time.Millisecond), strings.Join(reqs, ", "), res.Signed, res.Rewritten, res.Unchanged)
	}
}
