package lock_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

var fast = lock.Options{Settle: 20 * time.Millisecond, Refresh: time.Second, StaleAfter: time.Hour}

func acquire(t *testing.T, b s3cache.Bucket, kind string, opts lock.Options) (*lock.Lock, error) {
	t.Helper()
	return lock.Acquire(context.Background(), b, kind, opts)
}

// TestProtocol checks on each real server that shared locks coexist, an
// exclusive excludes everything, a released lock frees the way, and a
// stale lock is ignored and removed by RemoveStale.
func TestProtocol(t *testing.T) {
	ctx := context.Background()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			b := srv.Open(t, srv.Bucket)
			s1, err := acquire(t, b, lock.Shared, fast)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := acquire(t, b, lock.Shared, fast)
			if err != nil {
				t.Fatalf("second shared lock: %v", err)
			}
			opts := fast
			opts.Command = "gc"
			_, err = acquire(t, b, lock.Exclusive, opts)
			if !errors.Is(err, lock.ErrLocked) || !strings.Contains(err.Error(), "shared lock") {
				t.Fatalf("exclusive beside shared locks: %v; want ErrLocked naming the holder", err)
			}
			if err := s1.Release(); err != nil {
				t.Fatal(err)
			}
			if err := s2.Release(); err != nil {
				t.Fatal(err)
			}
			x, err := acquire(t, b, lock.Exclusive, opts)
			if err != nil {
				t.Fatalf("exclusive after release: %v", err)
			}
			if err := x.Check(ctx); err != nil {
				t.Fatalf("held lock fails Check: %v", err)
			}
			if _, err := acquire(t, b, lock.Shared, fast); !errors.Is(err, lock.ErrLocked) {
				t.Fatalf("shared beside exclusive: %v; want ErrLocked", err)
			}
			if _, err := acquire(t, b, lock.Exclusive, fast); !errors.Is(err, lock.ErrLocked) {
				t.Fatalf("exclusive beside exclusive: %v; want ErrLocked", err)
			}
			// A push waiting for the gc gets in once it is done: the gc
			// ends once the push has found its lock.
			releasing := make(chan struct{})
			wait := fast
			wait.Wait = time.Minute
			wait.Listed = func() {
				close(releasing)
				go x.Release()
			}
			s3, err := acquire(t, b, lock.Shared, wait)
			if err != nil {
				t.Fatalf("waiting shared lock: %v", err)
			}
			select {
			case <-releasing:
			default:
				t.Fatal("shared lock acquired while the exclusive was held")
			}
			if !s3.Waited() {
				t.Fatal("the shared lock did not wait for the exclusive one")
			}
			// unlock --all removes it; the holder notices.
			if gone, err := lock.RemoveStale(ctx, b, 0, true); err != nil || len(gone) != 1 {
				t.Fatalf("RemoveStale(all) = %v, %v; want the one lock", gone, err)
			}
			if err := s3.Check(ctx); !errors.Is(err, lock.ErrLost) {
				t.Fatalf("Check after removal: %v; want ErrLost", err)
			}
			s3.Release()

			// A lock left by a dead process goes stale.
			dead := `{"kind":"exclusive","id":"dead","host":"gone","pid":1}`
			if err := b.Put(ctx, "locks/exclusive-dead.json", strings.NewReader(dead), int64(len(dead)), s3cache.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := acquire(t, b, lock.Shared, fast); !errors.Is(err, lock.ErrLocked) || !strings.Contains(err.Error(), "gone") {
				t.Fatalf("shared beside a fresh dead exclusive: %v; want ErrLocked naming host gone", err)
			}
			time.Sleep(2500 * time.Millisecond) // the server's clock has whole seconds
			staleSoon := fast
			staleSoon.StaleAfter = time.Second
			l, err := acquire(t, b, lock.Shared, staleSoon)
			if err != nil {
				t.Fatalf("shared beside a stale exclusive: %v", err)
			}
			l.Release()
			if gone, err := lock.RemoveStale(ctx, b, time.Second, false); err != nil || len(gone) != 1 || gone[0].Key != "locks/exclusive-dead.json" {
				t.Fatalf("RemoveStale = %+v, %v; want the dead lock", gone, err)
			}
		})
	}
}

// TestExclusion races exclusive and shared acquirers against each other
// on a real server: no exclusive holder ever overlaps another holder.
func TestExclusion(t *testing.T) {
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	var exclusive, shared atomic.Int32
	var violations atomic.Int32
	var wg sync.WaitGroup
	opts := fast
	opts.Wait = time.Minute
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind := lock.Shared
			if i%3 == 0 {
				kind = lock.Exclusive
			}
			for range 3 {
				l, err := lock.Acquire(context.Background(), b, kind, opts)
				if err != nil {
					t.Error(err)
					return
				}
				if kind == lock.Exclusive {
					if exclusive.Add(1) != 1 || shared.Load() != 0 {
						violations.Add(1)
					}
				} else if shared.Add(1); exclusive.Load() != 0 {
					violations.Add(1)
				}
				time.Sleep(30 * time.Millisecond)
				if kind == lock.Exclusive {
					exclusive.Add(-1)
				} else {
					shared.Add(-1)
				}
				l.Release()
			}
		}()
	}
	wg.Wait()
	if n := violations.Load(); n != 0 {
		t.Fatalf("%d times an exclusive lock overlapped another holder", n)
	}
}
