package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// deleteGate is a reverse proxy in front of an S3 server that stops one
// DeleteObjects request of a run: the stop-th, forwarded first (the batch
// is deleted) or not (it never reaches the server); it then reports on
// hit and holds the request until released (the client killed), when
// it drops the connection.
type deleteGate struct {
	rp *httputil.ReverseProxy

	mu      sync.Mutex
	deletes int
	stop    int
	forward bool
	hit     chan struct{}
	held    chan struct{} // closed by release
}

func newDeleteGate(t *testing.T, target string) (*deleteGate, string) {
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &deleteGate{rp: &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(tu)
			pr.Out.Host = pr.In.Host // the signature covers the client's Host
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	t.Cleanup(g.release) // before srv.Close, which waits for the handlers
	return g, srv.URL
}

// release lets the held request go.
func (g *deleteGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != nil {
		close(g.held)
		g.held = nil
	}
}

// arm makes the stop-th DeleteObjects request from now on the one held.
func (g *deleteGate) arm(stop int, forward bool) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deletes, g.stop, g.forward, g.hit, g.held = 0, stop, forward, make(chan struct{}), make(chan struct{})
	return g.hit
}

func (g *deleteGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Query().Has("delete") {
		g.mu.Lock()
		g.deletes++
		stop, forward, hit, held := g.deletes == g.stop, g.forward, g.hit, g.held
		g.mu.Unlock()
		if stop {
			if forward {
				g.rp.ServeHTTP(httptest.NewRecorder(), r)
			}
			close(hit)
			<-held
			panic(http.ErrAbortHandler)
		}
	}
	g.rp.ServeHTTP(w, r)
}

// TestRmKilled kills the real binary's rm --with-referrers with SIGKILL
// at several points of its deletions (during a batch that reached the
// server, or one that did not), on a DAG where every path refers to the
// one removed, directly or through others; after every kill the whole
// bucket keeps the closure invariant (verify: every visible narinfo has
// its NAR and its references), no NAR is gone, and a rerun goes on, until
// one completes and the paths are gone.
func TestRmKilled(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	f := nixtest.Sample(t, 6, "rm-kill")
	dag := nixtest.Build(t, f, "dag")[0]
	var deepest string
	for _, p := range nixtest.Lines(t, "nix-store", "-qR", dag) {
		if strings.HasSuffix(p, "-dagrm-kill-0") {
			deepest = p
		}
	}
	doomed := nixtest.Lines(t, "nix-store", "-q", "--referrers-closure", deepest)
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			rmKilled(t, kind, dag, deepest, doomed)
		})
	}
}

// rmKilled is TestRmKilled on one kind of server.
func rmKilled(t *testing.T, kind, dag, deepest string, doomed []string) {
	srv := s3test.Start(t, kind)
	key, err := signing.GenerateSecretKey("rm-kill-1")
	if err != nil {
		t.Fatal(err)
	}
	env := append(creds(srv), "NIXBUCKET_CACHE="+srv.URL, "NIXBUCKET_SECRET_KEY="+key.Encode())
	if code, _, stderr := runBin(t, env, "push", "--root", "main", dag); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	b := srv.Open(t, srv.Bucket)
	nars := keysUnder(t, b, layout.NarDir)

	gate, proxy := newDeleteGate(t, srv.Endpoint)
	rmEnv := cliEnv(t, append(creds(srv), "NIXBUCKET_CACHE=s3://"+srv.Bucket+"?endpoint="+proxy+"&region="+s3test.Region))
	kills := 0
	for run := 0; ; run++ {
		if run == 2*len(doomed) {
			t.Fatalf("rm did not complete in %d runs", run)
		}
		if !keysUnder(t, b, layout.NarInfoKeyOf(deepest))[layout.NarInfoKeyOf(deepest)] {
			break // killed after its last narinfo batch: rm of it now says not in the cache
		}
		stop, forward := 1+run%2, run%3 != 1
		hit := gate.arm(stop, forward)
		cmd := exec.Command(cliBin, "rm", "--with-referrers", deepest)
		cmd.Env = rmEnv
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil || !strings.Contains(stdout.String(), "removed "+deepest+"\n") {
				t.Fatalf("run %d: rm: %v: %s%s", run, err, stdout.String(), stderr.String())
			}
		case <-hit:
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-done
			gate.release()
			kills++
			assertSound(t, b, fmt.Sprintf("after a kill at delete batch %d (forwarded %v) of run %d", stop, forward, run))
			continue
		}
		break
	}
	t.Logf("%d paths removed through %d kills", len(doomed), kills)
	if kills < 3 {
		t.Errorf("rm was killed %d times, want at least 3 kill points", kills)
	}
	assertSound(t, b, "after rm completed")
	have := keysUnder(t, b, "")
	for _, p := range doomed {
		if have[layout.NarInfoKeyOf(p)] {
			t.Errorf("%s is still in the cache", p)
		}
	}
	for k := range nars {
		if !have[k] {
			t.Errorf("the NAR %s is gone: rm must leave NARs to gc", k)
		}
	}
}

// assertSound fails the test unless verify finds the bucket sound.
func assertSound(t *testing.T, b s3cache.Bucket, what string) {
	t.Helper()
	rep, err := verify.Check(t.Context(), b, verify.Options{})
	if err != nil {
		t.Fatalf("%s: verify: %v", what, err)
	}
	if !rep.OK() {
		t.Fatalf("%s: the cache is not sound: %v", what, rep.Faults)
	}
}

// keysUnder returns the keys under prefix.
func keysUnder(t *testing.T, b s3cache.Bucket, prefix string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := b.List(t.Context(), prefix, func(o s3cache.ObjectInfo) error { out[o.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}
