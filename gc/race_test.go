package gc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/invariant"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// cliBin is the nixbucket binary the concurrency test runs:
// $NIXBUCKET_BIN (the Makefile's build), else one built by TestMain.
var cliBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // -short runs no binary: nothing to build
	}
	cliBin = os.Getenv("NIXBUCKET_BIN")
	if cliBin == "" {
		dir, err := os.MkdirTemp("", "nixbucket-gc-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cliBin = filepath.Join(dir, "nixbucket")
		cmd := exec.Command("go", "build", "-o", cliBin, "github.com/nixbucket/nixbucket/cmd/nixbucket")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building nixbucket: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// raceIterations is the number of pushes of each pusher with a root, per
// server; the pusher without a lock pushes half as many fresh closures.
const raceIterations = 30

// chainsExpr has `count` chains of three input-addressed paths (c refers
// to b, b to a), each file naming its own path, so no two share a NAR: the
// closures the pusher without a lock pushes, each once.
const chainsExpr = `{ count }:
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" script ];
  };
  chain = i: let
    a = mk "gcrace-${toString i}-a" "mkdir $out; echo gc race ${toString i} $out > $out/a";
    b = mk "gcrace-${toString i}-b" "mkdir $out; echo ${a} $out > $out/b";
  in mk "gcrace-${toString i}-c" "mkdir $out; echo ${b} $out > $out/c";
in builtins.listToAttrs (builtins.genList (i: { name = "c${toString i}"; value = chain i; }) count)
`

// raceEnv is the environment of the CLI runs against srv.
func raceEnv(t *testing.T, srv *s3test.Server, key *signing.SecretKey) []string {
	home := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "NIXBUCKET_CACHE=" + srv.URL, "NIXBUCKET_SECRET_KEY=" + key.Encode(),
	}
	for _, v := range []string{"NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_REMOTE", "NIX_DAEMON_SOCKET_PATH", "TMPDIR"} {
		if s, ok := os.LookupEnv(v); ok {
			env = append(env, v+"="+s)
		}
	}
	return env
}

// cliRun runs the CLI; with kill > 0 it sends SIGKILL after that long
// unless the run ended first. It reports whether it killed the run, and
// otherwise the output and the exit error.
func cliRun(env []string, kill time.Duration, args ...string) (cliOut, error) {
	cmd := exec.Command(cliBin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		return cliOut{}, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timer <-chan time.Time
	if kill > 0 {
		timer = time.After(kill)
	}
	var err error
	select {
	case err = <-done:
	case <-timer:
		if kerr := cmd.Process.Kill(); errors.Is(kerr, os.ErrProcessDone) {
			err = <-done // it ended between the timer and the kill
		} else {
			<-done // reaped: its lock's holder is gone
			return cliOut{killed: true}, nil
		}
	}
	return cliOut{stdout: out.String(), stderr: errOut.String()}, err
}

// cliOut is what a cliRun saw.
type cliOut struct {
	killed         bool
	stdout, stderr string
}

// sampler checks the cache invariant while pushes and gcs run: every
// visible narinfo has its NAR, of the size it says, and the narinfos of
// its references. A listing is not a snapshot, so a fault counts only if
// the narinfo was there, unchanged (same LastModified in a listing)
// before and after the failed check: it was visible all along.
type sampler struct {
	b         s3cache.Bucket
	rng       *rand.Rand
	faults    []string
	samples   int // rounds
	during    int // rounds that overlapped a gc run
	checked   int // narinfos checked
	gcRunning *atomic.Int32
}

func (s *sampler) round(ctx context.Context, max int) error {
	overlapped := s.gcRunning.Load() > 0
	lm := map[string]time.Time{}
	err := s.b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		if layout.KindOf(o.Key) == layout.KindNarInfo {
			lm[o.Key] = o.LastModified
		}
		return nil
	})
	if err != nil {
		return err
	}
	var keys []string
	for k := range lm {
		keys = append(keys, k)
	}
	s.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys[:min(len(keys), max)] {
		problems, err := s.check(ctx, k)
		if err != nil {
			return err
		}
		s.checked++
		if len(problems) == 0 {
			continue
		}
		// Still there, the same object as listed before the check?
		still := false
		err = s.b.List(ctx, k, func(o s3cache.ObjectInfo) error {
			still = still || o.Key == k && o.LastModified.Equal(lm[k])
			return nil
		})
		if err != nil {
			return err
		}
		if still {
			s.faults = append(s.faults, k+": "+strings.Join(problems, "; "))
		}
	}
	s.samples++
	if overlapped || s.gcRunning.Load() > 0 {
		s.during++
	}
	return nil
}

// check returns what is wrong with the narinfo at key; nothing if it was
// deleted since the listing.
func (s *sampler) check(ctx context.Context, key string) ([]string, error) {
	problems, err := invariant.NarInfo(ctx, s.b, key)
	if errors.Is(err, s3cache.ErrNotFound) {
		return nil, nil // deleted since the listing
	}
	return problems, err
}

// TestPushesBesideGC runs the real CLI on each real S3 server: pushes of
// different and overlapping closures with roots, many of them killed with
// SIGKILL at random moments, and a pusher without the lock (fresh
// closures, no root: only gc's grace protects them), all in loops beside
// gc runs with a two-second grace and --keep-last 1, while a sampler
// checks the invariant. No visible narinfo may ever lack its NAR or a
// reference; gc must have deleted narinfos and NARs; at the end the cache
// verifies and every root's newest manifest substitutes with real Nix.
func TestPushesBesideGC(t *testing.T) {
	f := buildFixtureOf(t, 60, "raceA", "raceB")
	chainsFile := nixtest.WriteExpr(t, chainsExpr)
	var attrs []string
	for i := range raceIterations {
		attrs = append(attrs, "c"+strconv.Itoa(i))
	}
	chains := nixtest.Build(t, nixtest.WriteExpr(t, fmt.Sprintf("import %s { count = %d; }", chainsFile, len(attrs))), attrs...)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NIXBUCKET_RACE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("NIXBUCKET_RACE_SEED=%d reproduces the kill times", seed)
	for i, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			half := raceIterations / 2
			raceServer(t, f, kind, chains[i*half:(i+1)*half], rand.New(rand.NewPCG(seed, uint64(i))))
		})
	}
}

func raceServer(t *testing.T, f *fixture, kind string, chains []string, rng *rand.Rand) {
	srv := s3test.Start(t, kind)
	b := srv.Open(t, srv.Bucket)
	env := raceEnv(t, srv, f.key)
	paths := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, f.paths[n])
		}
		return out
	}
	// One uninterrupted push measures how long a push takes.
	start := time.Now()
	if out, err := cliRun(env, 0, append([]string{"push", "--root", "z", "--jobs", "2"}, paths("dagB")...)...); err != nil {
		t.Fatalf("push: %v: %s", err, out.stderr)
	}
	full := time.Since(start)
	t.Logf("a push takes %v", full.Round(time.Millisecond))

	var (
		mu        sync.Mutex
		errs      []string
		killed    int
		gcRuns    int
		gcDeleted int // narinfos and NARs
		young     int
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	seeds := [4]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
	pushers := []struct {
		root string
		sets [][]string
	}{
		{"x", [][]string{{"appA"}, {"dagA"}}},
		{"y", [][]string{{"dagA", "libA"}, {"appB"}}},
		{"z", [][]string{{"dagB"}, {"appA", "appB"}}},
	}
	var pushing sync.WaitGroup
	for i, p := range pushers {
		pushing.Add(1)
		go func() {
			defer pushing.Done()
			rng := rand.New(rand.NewPCG(seeds[i], 1))
			for j := range raceIterations {
				names := p.sets[j%2]
				var kill time.Duration
				if rng.IntN(2) == 0 {
					kill = time.Duration(rng.Int64N(int64(full)*3/2)) + time.Millisecond
				}
				args := append([]string{"push", "--root", p.root, "--jobs", "2"}, paths(names...)...)
				out, err := cliRun(env, kill, args...)
				mu.Lock()
				if out.killed {
					killed++
				}
				mu.Unlock()
				if err != nil {
					fail("push --root %s %v: %v: %s", p.root, names, err, out.stderr)
				}
				time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
			}
		}()
	}
	pushing.Add(1)
	go func() { // no lock, no root, a fresh closure each time
		defer pushing.Done()
		rng := rand.New(rand.NewPCG(seeds[3], 1))
		for _, c := range chains {
			var kill time.Duration
			if rng.IntN(2) == 0 {
				kill = time.Duration(rng.Int64N(int64(full))) + time.Millisecond
			}
			out, err := cliRun(env, kill, "push", "--no-lock", "--jobs", "2", c)
			mu.Lock()
			if out.killed {
				killed++
			}
			mu.Unlock()
			if err != nil {
				fail("push --no-lock %s: %v: %s", c, err, out.stderr)
			}
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		}
	}()
	pushersDone := make(chan struct{})
	go func() { pushing.Wait(); close(pushersDone) }()

	var gcRunning atomic.Int32
	var background sync.WaitGroup
	background.Add(1)
	go func() { // gc in a loop until the pushers are done
		defer background.Done()
		for {
			gcRunning.Add(1)
			out, err := cliRun(env, 0, "gc", "--keep-last", "1", "--grace", "2s", "--wait", "2m", "--json")
			gcRunning.Add(-1)
			if err != nil {
				fail("gc: %v: %s", err, out.stderr)
				return
			}
			var rep gc.Report
			if err := json.Unmarshal([]byte(out.stdout), &rep); err != nil {
				fail("gc --json: %v: %q", err, out.stdout)
				return
			}
			mu.Lock()
			gcRuns++
			young += rep.Young
			for _, a := range rep.Actions {
				if a.Op == gc.OpDelete && (layout.KindOf(a.Key) == layout.KindNarInfo || layout.IsNar(a.Key)) {
					gcDeleted++
				}
			}
			mu.Unlock()
			select {
			case <-pushersDone:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	smp := &sampler{b: b, rng: rand.New(rand.NewPCG(seeds[0], 2)), gcRunning: &gcRunning}
	background.Add(1)
	go func() { // the invariant, checked all along
		defer background.Done()
		for {
			if err := smp.round(context.Background(), 40); err != nil {
				fail("sampler: %v", err)
				return
			}
			select {
			case <-pushersDone:
				return
			default:
			}
		}
	}()
	<-pushersDone
	background.Wait()

	for _, e := range errs {
		t.Error(e)
	}
	for _, fault := range smp.faults {
		t.Errorf("visible while pushes and gc ran: %s", fault)
	}
	t.Logf("%d gc runs deleted %d narinfos and NARs (%d narinfos kept for being young); %d pushes killed; sampler: %d rounds (%d beside a gc), %d narinfos checked",
		gcRuns, gcDeleted, young, killed, smp.samples, smp.during, smp.checked)
	if gcDeleted == 0 {
		t.Error("gc never deleted a narinfo or NAR: the test exercised no race")
	}
	if killed == 0 {
		t.Error("no push was killed")
	}
	if young == 0 {
		t.Error("gc never kept a narinfo for being younger than the grace")
	}
	if smp.during == 0 {
		t.Error("the sampler never ran beside a gc")
	}
	if t.Failed() {
		t.FailNow()
	}
	rep, err := verify.Check(context.Background(), b, verify.Options{TrustedKeys: signing.NewPublicKeys(f.key.PublicKey())})
	if err != nil || !rep.OK() {
		t.Fatalf("verify at the end: %v, %v", err, rep.Faults)
	}
	// Every root's newest manifest still substitutes.
	x, err := roots.List(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range x.Roots {
		m, err := roots.Read(context.Background(), b, r.Manifests[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for n, p := range f.paths {
			for _, top := range m.TopLevel {
				if top == p {
					names = append(names, n)
				}
			}
		}
		f.assertSubstitutes(t, b, names...)
	}
}
