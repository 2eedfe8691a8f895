package lock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// holderEnv, when set (to a store URL), makes the test binary take a
// shared lock in that bucket, print its key and sleep: a lock holder in
// another process, for the tests to kill.
const holderEnv = "NIXBUCKET_TEST_LOCK_HOLDER"

func TestMain(m *testing.M) {
	if u := os.Getenv(holderEnv); u != "" {
		os.Exit(holdLock(u))
	}
	os.Exit(m.Run())
}

func holdLock(raw string) int {
	ctx := context.Background()
	u, err := s3cache.ParseURL(raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, err := s3cache.OpenS3(ctx, u, s3cache.S3Options{Credentials: &s3cache.Credentials{
		AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := lock.Acquire(ctx, b, lock.Shared, lock.Options{Command: "holder", Settle: 20 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(l.Key())
	io.Copy(io.Discard, os.Stdin) // hold the lock until killed (or stdin closes)
	return 0
}

// startHolder runs a lock holder and returns it with its lock's key.
func startHolder(t *testing.T, srv *s3test.Server) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+srv.URL, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	key, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the lock holder printed no key: %v", err)
	}
	go io.Copy(io.Discard, out)
	return cmd, strings.TrimSpace(key)
}

// TestDeadHolder: a lock whose holder ran on this machine (same boot and
// PID namespace) and was killed is stale at once, as in restic: gc need
// not wait half an hour after a CI push was killed. A live holder's lock
// is not, and neither is a lock from another process space.
func TestDeadHolder(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	holder, key := startHolder(t, srv)
	if _, err := lock.Acquire(ctx, b, lock.Exclusive, fast); !errors.Is(err, lock.ErrLocked) || !strings.Contains(err.Error(), "holder") {
		t.Fatalf("exclusive beside a live holder: %v; want ErrLocked naming it", err)
	}
	if gone, err := lock.RemoveStale(ctx, b, 0, false); err != nil || len(gone) != 0 {
		t.Fatalf("unlock beside a live holder removed %v (%v)", gone, err)
	}
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	x, err := lock.Acquire(ctx, b, lock.Exclusive, fast)
	if err != nil {
		t.Fatalf("exclusive beside a killed holder's lock: %v", err)
	}
	x.Release()
	gone, err := lock.RemoveStale(ctx, b, 0, false)
	if err != nil || len(gone) != 1 || gone[0].Key != key {
		t.Fatalf("unlock after the holder was killed: %+v, %v; want %s removed", gone, err, key)
	}

	// The same pid in another process space (another machine) proves nothing.
	other := fmt.Sprintf(`{"kind":"shared","id":"far","host":"far","pid":%d,"space":"another-boot/pid:[1]"}`, holder.Process.Pid)
	if err := b.Put(ctx, "locks/shared-far.json", strings.NewReader(other), int64(len(other)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Acquire(ctx, b, lock.Exclusive, fast); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("exclusive beside a lock from another process space: %v; want ErrLocked", err)
	}
}

// TestReusedPID: a holder is its PID and the time its process started
// (and its boot): a lock naming a live PID whose process started at
// another time was left by a process that is gone, the PID since reused,
// and is stale at once. Before the start time was recorded, gc and erase
// refused for half an hour beside such a lock.
func TestReusedPID(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	holder, key := startHolder(t, srv)
	// The lock says who holds it, readably.
	infos, err := lock.List(ctx, b)
	if err != nil || len(infos) != 1 {
		t.Fatalf("locks: %v, %v", infos, err)
	}
	held, err := lock.Read(ctx, b, infos[0])
	if err != nil {
		t.Fatal(err)
	}
	if held.PID != holder.Process.Pid || held.Space == "" || held.Host == "" {
		t.Fatalf("the holder's lock %s says %+v; want its pid %d, host and process space", key, held, holder.Process.Pid)
	}
	if start, err := lock.ProcessStart(holder.Process.Pid); err != nil || held.PIDStart != start {
		t.Fatalf("the holder's lock records start %d; its process started at %d (%v)", held.PIDStart, start, err)
	}
	raw, err := s3cache.ReadSmall(ctx, b, key, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"pid": `, `"pid_start": `, `"space": `} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("the lock's JSON has no %s field:\n%s", field, raw)
		}
	}

	self, err := lock.ProcessStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	forge := func(name string, pid int, start uint64) string {
		k := "locks/exclusive-" + name + ".json"
		body := fmt.Sprintf(`{"kind":"exclusive","id":%q,"host":%q,"pid":%d,"pid_start":%d,"space":%q}`, name, held.Host, pid, start, held.Space)
		if err := b.Put(ctx, k, strings.NewReader(body), int64(len(body)), s3cache.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, tc := range []struct {
		name  string
		pid   int
		start uint64
		dead  bool
	}{
		{"live-holder", holder.Process.Pid, held.PIDStart, false},
		{"us", os.Getpid(), self, false},
		{"reused-holder-pid", holder.Process.Pid, held.PIDStart + 1, true},
		{"reused-our-pid", os.Getpid(), self - 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := forge(tc.name, tc.pid, tc.start)
			defer b.Delete(ctx, k)
			gone, err := lock.RemoveStale(ctx, b, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			removed := len(gone) == 1 && gone[0].Key == k
			if removed != tc.dead || len(gone) > 1 {
				t.Fatalf("unlock removed %v; want the lock of pid %d started at %d removed: %v", gone, tc.pid, tc.start, tc.dead)
			}
		})
	}
}

// statCounter counts HEADs of lock objects.
type statCounter struct {
	*s3cache.S3Bucket
	n atomic.Int32
}

func (s *statCounter) Stat(ctx context.Context, key string) (s3cache.ObjectInfo, error) {
	s.n.Add(1)
	return s.S3Bucket.Stat(ctx, key)
}

// TestCheck: Check reuses a confirmation younger than Settle/2 (so a
// push checking before each narinfo costs few HEADs), and a lock that was
// removed is lost for good: the refresher does not write it back.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, s3test.MinIO)
	b := &statCounter{S3Bucket: srv.Open(t, srv.Bucket)}
	opts := lock.Options{Settle: 400 * time.Millisecond, Refresh: 50 * time.Millisecond, StaleAfter: time.Hour}
	l, err := lock.Acquire(ctx, b, lock.Shared, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	const checks = 50
	for range checks {
		if err := l.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.n.Load(); n >= checks {
		t.Fatalf("%d checks made %d HEADs; want confirmations reused", checks, n)
	}
	if _, err := lock.RemoveStale(ctx, b, 0, true); err != nil {
		t.Fatal(err)
	}
	// The refresher finds the removal, and stops without writing it back.
	select {
	case <-l.RefresherDone():
	case <-time.After(time.Minute):
		t.Fatal("the refresher never found the lock removed")
	}
	if left, err := lock.List(ctx, b); err != nil || len(left) != 0 {
		t.Fatalf("the removed lock is back: %v, %v", left, err)
	}
	if err := l.Check(ctx); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Check of a removed lock: %v; want ErrLost", err)
	}
}

// manualClock is a local clock that moves only when told.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// slowStats delays each HEAD past Settle/2, and counts the most in
// flight at once.
type slowStats struct {
	statCounter
	delay          time.Duration
	inFlight, most atomic.Int32
}

func (s *slowStats) Stat(ctx context.Context, key string) (s3cache.ObjectInfo, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	time.Sleep(s.delay)
	return s.statCounter.Stat(ctx, key)
}

// TestCheckParallel: callers checking at once share the confirmer's
// HEADs, even when a HEAD takes longer than Settle/2 (a remote server): a
// push checking before each of 32 narinfos written in parallel must not
// turn them into a queue of HEADs, nor make a HEAD each.
func TestCheckParallel(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	clock := &manualClock{t: time.Now()}
	opts := lock.Options{Settle: 40 * time.Millisecond, Refresh: time.Hour, StaleAfter: time.Hour, Clock: clock.now}
	b := &slowStats{statCounter: statCounter{S3Bucket: srv.Open(t, srv.Bucket)}, delay: 100 * time.Millisecond}
	l, err := lock.Acquire(ctx, b, lock.Shared, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	clock.add(opts.Settle) // the acquisition's confirmation is old now
	before := b.n.Load()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Check(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if most := b.most.Load(); most > lock.MaxConfirming {
		t.Fatalf("32 parallel checks had %d HEADs of %v each in flight; want them to share the confirmer's (at most %d)", most, b.delay, lock.MaxConfirming)
	}
	t.Logf("32 parallel checks: %d HEADs, at most %d at once", b.n.Load()-before, b.most.Load())
}
