package lock_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// TestWriterPreference checks on each real server that an exclusive lock
// waiting for shared ones is not starved: while it waits, its waiting
// object keeps new shared locks out (pushes already holding theirs are
// not disturbed), it gets the lock once they are released, and it removes
// the waiting object. A waiting object nobody rewrites goes stale.
func TestWriterPreference(t *testing.T) {
	ctx := context.Background()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			b := srv.Open(t, srv.Bucket)
			held, err := acquire(t, b, lock.Shared, fast)
			if err != nil {
				t.Fatal(err)
			}
			gcOpts := fast
			gcOpts.Command, gcOpts.Wait = "gc", time.Minute
			var gcHolds atomic.Bool
			got := make(chan error, 1)
			go func() {
				x, err := acquire(t, b, lock.Exclusive, gcOpts)
				if err == nil {
					gcHolds.Store(true)
					time.Sleep(200 * time.Millisecond)
					gcHolds.Store(false)
					err = x.Release()
				}
				got <- err
			}()
			waitFor(t, func() bool { return len(keysOf(t, b, lock.Prefix+lock.Waiting+"-")) == 1 }, "the waiting object")

			// A new push does not start while the gc waits.
			if _, err := acquire(t, b, lock.Shared, fast); !errors.Is(err, lock.ErrLocked) || !strings.Contains(err.Error(), "waiting lock") {
				t.Fatalf("shared lock beside a waiting gc: %v; want ErrLocked naming the waiting lock", err)
			}
			// The running push is undisturbed; once it ends, the gc runs, and
			// a push that waits gets in after it.
			if err := held.Check(ctx); err != nil {
				t.Fatalf("a held shared lock fails Check while a gc waits: %v", err)
			}
			if err := held.Release(); err != nil {
				t.Fatal(err)
			}
			wait := fast
			wait.Wait = time.Minute
			s, err := acquire(t, b, lock.Shared, wait)
			if err != nil {
				t.Fatalf("a push waiting for the gc: %v", err)
			}
			if gcHolds.Load() {
				t.Fatal("a shared lock was acquired while the gc held the exclusive one")
			}
			if err := <-got; err != nil {
				t.Fatalf("the waiting gc: %v", err)
			}
			s.Release()
			if left := keysOf(t, b, lock.Prefix); len(left) != 0 {
				t.Fatalf("locks left after everyone released: %v", left)
			}

			// A waiting object left by a killed gc on another machine keeps
			// pushes out only until it is WaitingStaleAfter old.
			body := `{"kind":"waiting","id":"killed","host":"elsewhere","pid":1}`
			if err := b.Put(ctx, "locks/waiting-killed.json", strings.NewReader(body), int64(len(body)), s3cache.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := acquire(t, b, lock.Shared, fast); !errors.Is(err, lock.ErrLocked) {
				t.Fatalf("shared lock beside a fresh waiting object: %v; want ErrLocked", err)
			}
			// A clock that jumps past WaitingStaleAfter once read (by the
			// acquirer's server clock, which follows only its passing).
			later := fast
			var reads atomic.Int32
			later.Clock = func() time.Time {
				if reads.Add(1) == 1 {
					return time.Now()
				}
				return time.Now().Add(lock.WaitingStaleAfter + 2*time.Second)
			}
			l, err := acquire(t, b, lock.Shared, later)
			if err != nil {
				t.Fatalf("shared lock beside a stale waiting object: %v", err)
			}
			l.Release()
		})
	}
}

// keysOf lists the keys under prefix.
func keysOf(t *testing.T, b s3cache.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	if err := b.List(context.Background(), prefix, func(o s3cache.ObjectInfo) error {
		out = append(out, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
