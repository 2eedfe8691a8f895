package push_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/nar"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
)

// crashKills is the number of times each server's push is killed.
const crashKills = 12

// TestCrashSafety kills the real CLI with SIGKILL at random moments of a
// push (a closure of ~330 paths with .drv files, outputs and a NAR
// uploaded in multipart parts), on each real S3 server. After every kill
// the cache must be sound: every visible narinfo has its NAR, with the
// right size and hashes, and its whole closure, and is signed. Reruns then
// complete the pushes, and the real Nix substitutes the closure through
// serve.Handler with require-sigs.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	f := nixtest.Sample(t, 300, "crash")
	nixtest.Build(t, f, "all")
	bigFile := nixtest.WriteExpr(t, bigExpr)
	nixtest.Build(t, bigFile)
	roots := append(nixtest.Instantiate(t, f, "all"), nixtest.Instantiate(t, bigFile)...)
	closure := nixtest.Lines(t, "nix-store", "-qR", "--include-outputs", roots[0], roots[1])
	key := newKey(t, "crash-test-1")

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NIXBUCKET_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("closure of %d paths; NIXBUCKET_CRASH_SEED=%d reproduces the kill times", len(closure), seed)
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			crashServer(t, kind, roots, closure, key, rand.New(rand.NewPCG(seed, uint64(len(kind)))))
		})
	}
}

func crashServer(t *testing.T, kind string, roots, closure []string, key *signing.SecretKey, rng *rand.Rand) {
	srv := s3test.Start(t, kind)
	env := cliEnv(t, srv, key)
	pushArgs := func(bucket string) []string {
		return append([]string{"push", "--cache", srv.StoreURL(bucket), "--include-outputs", "--compression", "zstd"}, roots...)
	}

	// An uninterrupted push measures how long one takes.
	res := runCLI(t, env, pushArgs(srv.Bucket)...)
	if res.code != 0 {
		t.Fatalf("push: exit %d: %s", res.code, res.stderr)
	}
	full := res.elapsed
	r := checkCache(t, srv.Open(t, srv.Bucket), key, "after a full push")
	if r.NarInfos != len(closure) {
		t.Fatalf("a full push left %d narinfos, want %d", r.NarInfos, len(closure))
	}
	t.Logf("a full push takes %v: %s", full.Round(time.Millisecond), strings.TrimSpace(res.stdout))

	// Kills: a push into a fresh bucket is killed, then resumed and killed
	// again, up to three times, so kills hit resumed pushes too.
	var buckets []string
	partial, fresh := 0, true
	for i := range crashKills {
		if fresh {
			buckets = append(buckets, srv.NewBucket(t))
		}
		bucket := buckets[len(buckets)-1]
		// A resumed push uploads again every NAR whose narinfo is missing,
		// so it takes about as long as a fresh one; its narinfos come last
		// (after the lock), so kills are drawn from a quarter of a push on.
		delay := full/4 + time.Duration(rng.Int64N(int64(full)))
		start := time.Now()
		exited := killAfter(t, env, pushArgs(bucket), delay)
		if exited && fresh {
			// Later pushes run faster than the first (warm page cache,
			// servers past their start-up): draw kill times from the
			// fastest whole push seen, so that kills land mid-push.
			full = min(full, time.Since(start))
		}
		b := srv.Open(t, bucket)
		r := checkCache(t, b, key, fmt.Sprintf("kill %d after %v", i, delay))
		if r.NarInfos > 0 && r.NarInfos < len(closure) {
			partial++
		}
		t.Logf("kill %2d after %6v (%-5s bucket, exited first: %-5v): %3d/%d narinfos, %3d NARs (%d unreferenced), %d unfinished multipart uploads",
			i, delay.Round(time.Millisecond), map[bool]string{true: "fresh", false: "same"}[fresh], exited,
			r.NarInfos, len(closure), r.NARs, r.OrphanNARs, unfinishedUploads(t, b))
		fresh = exited || r.NarInfos == len(closure) || i%3 == 2
	}
	if partial == 0 {
		t.Errorf("none of %d kills interrupted a push half-way: the test proved nothing", crashKills)
	}
	t.Logf("%d of %d kills left a partial cache", partial, crashKills)

	// Reruns complete every interrupted push.
	for _, bucket := range buckets {
		res := runCLI(t, env, pushArgs(bucket)...)
		if res.code != 0 {
			t.Fatalf("rerun: exit %d: %s", res.code, res.stderr)
		}
		r := checkCache(t, srv.Open(t, bucket), key, "after a rerun")
		if r.NarInfos != len(closure) || r.Signed != len(closure) {
			t.Fatalf("after a rerun: %d narinfos, %d signed; want %d", r.NarInfos, r.Signed, len(closure))
		}
	}

	substitute(t, srv, buckets[len(buckets)-1], closure, key)
}

// killAfter starts a push and kills it with SIGKILL after delay; it
// reports whether the push ended by itself first.
func killAfter(t *testing.T, env, args []string, delay time.Duration) bool {
	t.Helper()
	cmd := exec.Command(nixbucketBin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("push failed before the kill: %v: %s", err, stderr.String())
		}
		return true
	case <-time.After(delay):
		if err := cmd.Process.Kill(); errors.Is(err, os.ErrProcessDone) {
			// The push ended by itself between the timer and the kill.
			if err := <-done; err != nil {
				t.Fatalf("push failed before the kill: %v: %s", err, stderr.String())
			}
			return true
		} else if err != nil {
			t.Fatal(err)
		}
		<-done
		return false
	}
}

// substitute has the real Nix copy the closure from the bucket, read
// through serve.Handler, into an empty chroot store with require-sigs,
// and checks what arrived; with another trusted key, it must refuse.
func substitute(t *testing.T, srv *s3test.Server, bucket string, closure []string, key *signing.SecretKey) {
	t.Helper()
	ts := httptest.NewServer(serve.Handler(srv.Open(t, bucket), nil))
	defer ts.Close()

	var big string
	for _, p := range closure {
		if strings.HasSuffix(p, "-nixbucket-robust-big") {
			big = p
		}
	}
	other := newKey(t, "someone-else-1")
	if _, err := nixtest.Substitute(t, ts.URL, other.PublicKey().String(), []string{big}); err == nil {
		t.Errorf("nix copy of %s trusting another key succeeded, want a refusal", big)
	} else if !strings.Contains(err.Error(), "lacks a valid signature") {
		t.Errorf("nix copy trusting another key: %v, want a missing signature error", err)
	}

	root, err := nixtest.Substitute(t, ts.URL, key.PublicKey().String(), closure)
	if err != nil {
		t.Fatalf("nix copy from the pushed cache: %v", err)
	}
	var drvs []string
	for _, p := range closure {
		if strings.HasSuffix(p, ".drv") {
			drvs = append(drvs, p)
		}
	}
	// Every path arrived: the chroot store's closure of the .drv files
	// with their outputs is the whole closure.
	got := nixtest.Lines(t, "nix-store", append([]string{"--store", "local?root=" + root, "-qR", "--include-outputs"}, drvs...)...)
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(closure)); !slices.Equal(got, want) {
		t.Errorf("the chroot store has %d of the %d paths", len(got), len(want))
	}
	for _, p := range []string{big, closure[0], closure[len(closure)-1]} {
		want := nixtest.Run(t, "nix-store", "-q", "--hash", p)
		h, _, err := nar.HashPath(context.Background(), filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Format(nixhash.NixBase32, true); got != want {
			t.Errorf("substituted %s has NarHash %s, the store's is %s", p, got, want)
		}
	}
	t.Logf("nix substituted %d paths into %s", len(closure), root)
}
