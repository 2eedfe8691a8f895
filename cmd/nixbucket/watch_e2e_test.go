package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/internal/invariant"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/queue"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// e2eChains is how many chains a <- b <- c the end-to-end test builds, in
// e2eWaves waves: 3*e2eChains+1 derivations (the a's are shared by
// neighbouring b's).
const (
	e2eChains = 20
	e2eWaves  = 5
)

// e2eExpr is a Nix expression of the test's derivations, unique to nonce:
// a0…a[n], b[i] depending on a[i] and a[i+1], c[i] on b[i]; attributes
// w0…w[waves-1] are the waves of c's to build.
func e2eExpr(nonce string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `let
  mk = name: deps: derivation {
    inherit name deps;
    nonce = %q;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" ''
      mkdir $out
      echo $nonce > $out/nonce
      for d in $deps; do echo $d >> $out/deps; done
      head -c 16384 /dev/urandom > $out/blob
    '' ];
  };
  a = i: mk "e2e-a${toString i}" [ ];
  b = i: mk "e2e-b${toString i}" [ (a i) (a (i + 1)) ];
  c = i: mk "e2e-c${toString i}" [ (b i) ];
in {
`, nonce)
	per := e2eChains / e2eWaves
	for w := range e2eWaves {
		fmt.Fprintf(&b, "  w%d = builtins.genList (j: c (%d + j)) %d;\n", w, w*per, per)
	}
	b.WriteString("}\n")
	return b.String()
}

// TestWatchEndToEnd is issue 13's "done means": a real nix-daemon with
// post-build-hook = nixbucket-hook builds 61 derivations in waves while
// `nixbucket watch` pushes to MinIO through toxiproxy, which resets a
// share of the connections and slows them all; watch is killed with -9
// while a batch is in flight and restarted. All along a sampler checks
// the bucket's invariant (every visible narinfo has its NAR and its
// references' narinfos). At the end every built path is in the bucket
// with the NarHash and references of the local store, verify (deep, with
// the trusted key) finds nothing wrong, and real Nix substitutes them all
// into a fresh store with require-sigs. It logs the hook's added time per
// build, the queue's throughput and the build-to-cache latency.
func TestWatchEndToEnd(t *testing.T) {
	nixtest.Require(t)
	ctx := context.Background()
	srv := s3test.Start(t, s3test.MinIO)
	bucket := srv.NewBucket(t)
	direct := srv.Open(t, bucket)
	toxi := s3test.NewToxi(t, srv.Endpoint)

	dir := t.TempDir()
	key, err := signing.GenerateSecretKey("e2e-watch-1")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "cache.key")
	qfile := filepath.Join(dir, "state", "queue.db")
	times := filepath.Join(dir, "hook.times")
	link := filepath.Join(dir, hookName)
	wrapper := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(keyFile, []byte(key.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cliBin, link); err != nil {
		t.Fatal(err)
	}
	// The hook is nixbucket-hook (the symlink of the recipe), timed from
	// the daemon's side: the time it adds to each build.
	script := fmt.Sprintf(`#!/bin/sh
t0=$(date +%%s%%N)
%s=%s %s
rc=$?
echo "$DRV_PATH $t0 $(date +%%s%%N) $rc" >> %s
exit $rc
`, queue.EnvVar, qfile, link, times)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	socket := nixtest.Daemon(t, "NIX_CONF_DIR="+nixtest.ConfDir(t, "post-build-hook = "+wrapper))

	expr := nixtest.WriteExpr(t, e2eExpr(s3test.RandomHex(8)))

	watchArgs := []string{"--retry-for", "60s", "watch", "--cache", toxi.StoreURL(bucket), "--secret-key-file", keyFile,
		"--queue", qfile, "--batch-wait", "100ms"}
	w := startWatch(t, creds(srv), watchArgs...)

	sctx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	smp := &e2eSampler{b: direct, seen: map[string]time.Time{}, checked: map[string]bool{}}
	samplerDone := make(chan error, 1)
	go func() { samplerDone <- smp.run(sctx) }()

	// Build the waves, one client after the other, as a builder's day.
	clientEnv := []string{"NIX_REMOTE=daemon", "NIX_DAEMON_SOCKET_PATH=" + socket}
	buildsDone := make(chan error, 1)
	var tops []string
	buildStart := time.Now()
	go func() {
		for wave := range e2eWaves {
			out, err := nixtest.Output(ctx, clientEnv, "nix-build", append([]string{expr, "-A", fmt.Sprintf("w%d", wave), "--no-out-link", "--max-jobs", "2"}, nixtest.Options...)...)
			if err != nil {
				buildsDone <- fmt.Errorf("wave %d: %w", wave, err)
				return
			}
			tops = append(tops, strings.Fields(string(out))...)
		}
		buildsDone <- nil
	}()

	q, err := queue.Open(ctx, qfile)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	// Faults: every connection is slowed; part of the time (resetOn of
	// every resetEvery) every connection is reset, open or new.
	toxi.Toxic(t, "slow", "latency", "downstream", map[string]any{"latency": 10, "jitter": 5})
	const resetOn, resetEvery = 150 * time.Millisecond, 500 * time.Millisecond
	var (
		resetting      bool
		resets         int
		nextFlip       = time.Now()
		killedInFlight int
		logs           []string // of the watches killed
		maxPending     int
		all            []string
		buildTime      time.Duration
		deadline       = time.Now().Add(3 * time.Minute)
	)
	// One loop, on the test's goroutine: flip the reset toxic; once a
	// batch was pushed and another is in flight (the queue says so), kill
	// watch -9 and restart it (again if the batch had finished when the
	// kill landed); note the builds' end; stop when everything is built,
	// the queue drained and every narinfo seen.
	for {
		if now := time.Now(); now.After(nextFlip) {
			if resetting {
				toxi.RemoveToxic(t, "reset")
				nextFlip = now.Add(resetEvery - resetOn)
			} else {
				toxi.Toxic(t, "reset", "reset_peer", "downstream", map[string]any{"timeout": 0})
				resets++
				nextFlip = now.Add(resetOn)
			}
			resetting = !resetting
		}
		if exited, out := w.exitedYet(); exited {
			t.Fatalf("watch exited:\n%s", out)
		}
		st, err := q.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		maxPending = max(maxPending, st.Pending)
		if st.Failed > 0 {
			t.Fatalf("entries failed: %+v\nwatch's log:\n%s", st, w.output())
		}
		if killedInFlight == 0 && st.Pushed > 0 && st.InFlight > 0 {
			w.signal(t, syscall.SIGKILL)
			w.wait(t)
			if st, err = q.Status(ctx); err != nil {
				t.Fatal(err)
			}
			killedInFlight = st.InFlight
			t.Logf("killed watch -9 with %d entries in flight, %d pushed", st.InFlight, st.Pushed)
			logs = append(logs, w.output())
			w = startWatch(t, creds(srv), watchArgs...)
		}
		select {
		case err := <-buildsDone:
			if err != nil {
				t.Fatalf("building: %v", err)
			}
			buildTime = time.Since(buildStart)
			all = nixtest.Lines(t, "nix-store", append([]string{"-qR"}, tops...)...)
			if want := 3*e2eChains + 1; len(all) != want {
				t.Fatalf("built %d paths, want %d", len(all), want)
			}
		default:
		}
		if all != nil && st.Pending+st.InFlight == 0 && smp.seenAll(hashPartsOf(all)) {
			if killedInFlight == 0 {
				t.Fatalf("everything was pushed before a batch could be caught in flight to kill")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %+v, built: %v; watch's log:\n%s", st, all != nil, w.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if resetting {
		toxi.RemoveToxic(t, "reset")
	}
	drained := time.Now()
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t); code != 0 {
		t.Errorf("watch after SIGTERM: exit %d\n%s", code, w.output())
	}
	stopSampler()
	if err := <-samplerDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("sampler: %v", err)
	}
	for _, f := range smp.faults {
		t.Errorf("invariant broken: %s", f)
	}
	if !strings.Contains(w.output(), fmt.Sprintf("requeued the entries a previous watch left in flight\" entries=%d", killedInFlight)) {
		t.Errorf("the restarted watch did not requeue the %d entries in flight:\n%s", killedInFlight, w.output())
	}

	// Every path is in the bucket as built.
	hashes := nixtest.Lines(t, "nix-store", append([]string{"-q", "--hash"}, all...)...)
	for i, p := range all {
		data, err := s3cache.ReadSmall(ctx, direct, layout.NarInfoKeyOf(p), 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		ni, err := narinfo.ParseString(string(data))
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		for _, r := range nixtest.Lines(t, "nix-store", "-q", "--references", p) {
			refs = append(refs, filepath.Base(r))
		}
		if got := ni.NarHash.Format(nixhash.NixBase32, true); got != hashes[i] {
			t.Errorf("%s: the bucket's NarHash %s, the store's %s", p, got, hashes[i])
		}
		if got := slices.Sorted(slices.Values(ni.References)); !slices.Equal(got, slices.Sorted(slices.Values(refs))) {
			t.Errorf("%s: the bucket's references %q, the store's %q", p, got, refs)
		}
	}
	rep, err := verify.Check(ctx, direct, verify.Options{Deep: true, Jobs: 4, TrustedKeys: signing.NewPublicKeys(key.PublicKey())})
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %v", err, rep.Faults)
	}
	hs := httptest.NewServer(serve.Handler(direct, nil))
	defer hs.Close()
	root, err := nixtest.Substitute(t, hs.URL, key.PublicKey().String(), all)
	if err != nil {
		t.Fatalf("nix copy from the cache with require-sigs: %v", err)
	}
	nixtest.AssertInStore(t, root, all)

	// The measurements.
	hooks := readHookTimes(t, times)
	drvs := nixtest.Lines(t, "nix-store", append([]string{"-qd"}, all...)...)
	if got, want := slices.Sorted(keysOf(hooks)), slices.Sorted(slices.Values(drvs)); !slices.Equal(got, want) {
		t.Errorf("the hook ran for %d derivations, %d were built: %q vs %q", len(got), len(want), got, want)
	}
	var hookDur, latency []time.Duration
	var hookSum time.Duration
	if len(drvs) != len(all) {
		t.Fatalf("%d derivations of %d paths", len(drvs), len(all))
	}
	for i, p := range all {
		h := hooks[drvs[i]] // nix-store -qd answers in order, one each
		hookDur = append(hookDur, h.end.Sub(h.start))
		hookSum += h.end.Sub(h.start)
		// The closure is in the cache when the narinfo is (the invariant).
		latency = append(latency, smp.seenAt(layout.NarInfoKeyOf(p)).Sub(h.start))
	}
	st, _ := q.Status(ctx)
	first := minStart(hooks)
	t.Logf("%d builds in %v; hook (nixbucket-hook, timed by the daemon's wrapper): median %v, max %v per build; %0.f Adds/s one after the other",
		len(hooks), buildTime.Round(time.Millisecond), median(hookDur), slices.Max(hookDur), float64(len(hooks))/hookSum.Seconds())
	t.Logf("watch drained %d entries (%d marked done in all) in %v from the first build's hook: %.1f paths/s, through %d reset windows and a kill -9 with %d in flight",
		len(all), st.Pushed, drained.Sub(first).Round(time.Millisecond), float64(len(all))/drained.Sub(first).Seconds(), resets, killedInFlight)
	t.Logf("build to closure in the cache (hook start to narinfo seen, sampled every %v): median %v, max %v", samplePeriod, median(latency), slices.Max(latency))
	logs = append(logs, w.output())
	batches, paths, busy := batchLines(t, strings.Join(logs, ""))
	t.Logf("watch: %d batches of %d paths in all, %v pushing: %.1f paths/s while pushing; %d batches failed and were retried; at most %d entries pending",
		batches, paths, busy.Round(time.Millisecond), float64(paths)/busy.Seconds(), strings.Count(strings.Join(logs, ""), "will retry"), maxPending)
	// The faults bit: requests were reset and retried.
	retried := strings.Count(strings.Join(logs, ""), "msg=\"retrying ")
	if retried == 0 {
		t.Errorf("watch retried no request: the resets never hit it")
	}
	t.Logf("watch retried %d requests after resets", retried)
	t.Logf("invariant sampler: %d rounds, %d narinfo checks, %d faults", smp.rounds, smp.checks, len(smp.faults))
}

// exited says whether the watch has exited, with its output.
func (p *watchProc) exitedYet() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited, p.out.String()
}

// samplePeriod is how often the sampler lists the bucket.
const samplePeriod = 100 * time.Millisecond

// e2eSampler lists the bucket's narinfos every samplePeriod, notes when
// each first appeared and checks the invariant on each new one (its NAR
// and its references' narinfos are there), and on all of them every tenth
// round. The test only pushes, so nothing visible may ever go missing.
type e2eSampler struct {
	b       s3cache.Bucket
	mu      sync.Mutex
	seen    map[string]time.Time // narinfo key: first seen
	checked map[string]bool
	faults  []string
	rounds  int
	checks  int
}

func (s *e2eSampler) run(ctx context.Context) error {
	tick := time.NewTicker(samplePeriod)
	defer tick.Stop()
	for {
		if err := s.round(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return s.round(context.Background()) // a last full look
		case <-tick.C:
		}
	}
}

func (s *e2eSampler) round(ctx context.Context) error {
	var keys []string
	now := time.Now()
	err := s.b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		if layout.KindOf(o.Key) == layout.KindNarInfo {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.rounds++
	full := s.rounds%10 == 0
	var todo []string
	for _, k := range keys {
		if _, ok := s.seen[k]; !ok {
			s.seen[k] = now
		}
		if full || !s.checked[k] {
			todo = append(todo, k)
		}
	}
	s.mu.Unlock()
	for _, k := range todo {
		problems, err := invariant.NarInfo(ctx, s.b, k)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.checks++
		s.checked[k] = true
		for _, p := range problems {
			s.faults = append(s.faults, k+": "+p)
		}
		s.mu.Unlock()
	}
	return nil
}

func (s *e2eSampler) seenAll(hashes []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range hashes {
		if _, ok := s.seen[h+".narinfo"]; !ok {
			return false
		}
	}
	return true
}

func (s *e2eSampler) seenAt(key string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[key]
}

// batchRE matches watch's line for a batch pushed.
var batchRE = regexp.MustCompile(`msg="batch pushed" paths=(\d+) .*duration=(\S+)`)

// batchLines sums watch's "batch pushed" lines: batches, paths, time.
func batchLines(t *testing.T, log string) (batches, paths int, busy time.Duration) {
	t.Helper()
	for _, m := range batchRE.FindAllStringSubmatch(log, -1) {
		n, err1 := strconv.Atoi(m[1])
		d, err2 := time.ParseDuration(m[2])
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("watch's batch line %q: %v", m[0], err)
		}
		batches, paths, busy = batches+1, paths+n, busy+d
	}
	return batches, paths, busy
}

// hookRun is one run of the hook, as the wrapper recorded it.
type hookRun struct{ start, end time.Time }

// readHookTimes reads the wrapper's lines "DRV_PATH start end rc" (Unix
// nanoseconds) and fails the test on a run that exited non-zero.
func readHookTimes(t *testing.T, file string) map[string]hookRun {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]hookRun{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 {
			t.Fatalf("hook times: bad line %q", sc.Text())
		}
		start, err1 := strconv.ParseInt(fs[1], 10, 64)
		end, err2 := strconv.ParseInt(fs[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil || fs[3] != "0" {
			t.Fatalf("hook times: line %q: %v (want exit 0)", sc.Text(), err)
		}
		out[fs[0]] = hookRun{time.Unix(0, start), time.Unix(0, end)}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func keysOf[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func minStart(h map[string]hookRun) time.Time {
	var first time.Time
	for _, r := range h {
		if first.IsZero() || r.start.Before(first) {
			first = r.start
		}
	}
	return first
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func hashPartsOf(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = strings.TrimSuffix(layout.NarInfoKeyOf(p), ".narinfo")
	}
	return out
}
