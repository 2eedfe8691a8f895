package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/verify"
)

// narGate is a reverse proxy to an S3 server that holds every request for
// a NAR (a key under nar/) until released, and says when the first one
// arrives: an upload that is under way for as long as the test wants.
type narGate struct {
	URL      string
	arrived  chan struct{} // closed at the first NAR request
	released chan struct{} // closed by release
	once     sync.Once
	rel      sync.Once
}

func newNarGate(t *testing.T, target string) *narGate {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &narGate{arrived: make(chan struct{}), released: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(u) // keeps the Host header: signatures stay valid
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/nar/") {
			g.once.Do(func() { close(g.arrived) })
			select {
			case <-g.released:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { g.release(); srv.Close() })
	g.URL = srv.URL
	return g
}

func (g *narGate) release() { g.rel.Do(func() { close(g.released) }) }

// TestUnlockDuringUpload: `unlock --all` while a push uploads a large NAR
// ends the push with "lock lost" (exit 1), not with an error about a
// missing object, and leaves no narinfo without its NAR.
func TestUnlockDuringUpload(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 2, "unlock-upload")
	blob := nixtest.Build(t, f, "blob")[0]
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	gate := newNarGate(t, srv.Endpoint)
	gated := "s3://" + srv.Bucket + "?endpoint=" + url.QueryEscape(gate.URL) + "&region=" + s3test.Region
	env := creds(srv)

	push := exec.Command(cliBin, "push", "--cache", gated, "--compression", "none", blob)
	push.Env = cliEnv(t, env)
	var stdout, stderr bytes.Buffer
	push.Stdout, push.Stderr = &stdout, &stderr
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{})
	go func() { exited <- push.Wait(); close(waited) }()
	t.Cleanup(func() { push.Process.Kill(); <-waited })

	select {
	case <-gate.arrived:
	case err := <-exited:
		t.Fatalf("push exited (%v) before uploading: %s", err, stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("push never started uploading its NAR")
	}
	// The push's lock is taken while the NAR uploads.
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if held, err := lock.List(ctx, b); err == nil && len(held) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the push took no lock while it uploaded")
		}
	}
	code, out, errOut := runBin(t, env, "unlock", "--all", "--cache", srv.URL)
	if code != 0 || !strings.Contains(out, "removed locks/shared-") {
		t.Fatalf("unlock --all: exit %d: %s%s", code, out, errOut)
	}
	gate.release()

	var err error
	select {
	case err = <-exited:
	case <-time.After(5 * time.Minute):
		t.Fatal("the push did not end after its upload was let through")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("push after unlock --all: %v; want it to fail\n%s", err, stderr.String())
	}
	msg := stderr.String()
	if !strings.Contains(msg, "lock lost") || strings.Contains(msg, "not found") {
		t.Errorf("push after unlock --all says %q; want \"lock lost\"", msg)
	}
	rep, err := verify.Check(ctx, b, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.NarInfos != 0 {
		t.Errorf("after a push that lost its lock: %d narinfos, faults %v", rep.NarInfos, rep.Faults)
	}
	t.Logf("push (exit %d): %s", ee.ExitCode(), strings.TrimSpace(msg))
}

// TestRootsTakeLock: `roots pin`, `unpin` and `rm` take the shared lock,
// as a push does: beside a running gc (an exclusive lock) they wait, and
// after --lock-wait fail without changing the root; --no-lock, whose risk
// --help states, goes ahead.
func TestRootsTakeLock(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	env := creds(srv)
	manifest := roots.Key("app", time.Now())
	if err := b.Put(ctx, manifest, strings.NewReader("{}"), 2, s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	gcLock, err := lock.Acquire(ctx, b, lock.Exclusive, lock.Options{Command: "test gc", Settle: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	before := listing(t, b)
	for _, sub := range []string{"pin", "unpin", "rm"} {
		code, out, errOut := runBin(t, env, "roots", sub, "app", "--cache", srv.URL, "--lock-wait", "0s")
		if code != 1 || !strings.Contains(errOut, "cache is locked") || !strings.Contains(errOut, "test gc") {
			t.Errorf("roots %s beside a gc: exit %d: %s%s; want 1 naming the gc's lock", sub, code, out, errOut)
		}
		if after := listing(t, b); !slices.Equal(after, before) {
			t.Errorf("roots %s beside a gc changed the bucket:\n%v\nwas\n%v", sub, after, before)
		}
	}
	if code, _, errOut := runBin(t, env, "roots", "pin", "app", "--cache", srv.URL, "--no-lock"); code != 0 {
		t.Fatalf("roots pin --no-lock beside a gc: exit %d: %s", code, errOut)
	}
	if _, err := b.Stat(ctx, roots.PinKey("app")); err != nil {
		t.Fatalf("roots pin --no-lock wrote no pin: %v", err)
	}
	if err := gcLock.Release(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"unpin", "rm"} {
		if code, _, errOut := runBin(t, env, "roots", sub, "app", "--cache", srv.URL); code != 0 {
			t.Fatalf("roots %s: exit %d: %s", sub, code, errOut)
		}
	}
	if left := listing(t, b); len(left) != 0 {
		t.Errorf("left after roots unpin and rm: %v; want nothing (no lock either)", left)
	}
	for _, cmd := range [][]string{{"push"}, {"roots", "pin"}, {"roots", "unpin"}, {"roots", "rm"}} {
		_, out, _ := runBin(t, env, append(cmd, "--help")...)
		if !strings.Contains(out, "--no-lock") || !strings.Contains(out, "Risk: a gc running meanwhile") {
			t.Errorf("%v --help does not say what --no-lock risks:\n%s", cmd, out)
		}
	}
}
