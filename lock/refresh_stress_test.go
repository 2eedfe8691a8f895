package lock_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// step is a call an actor is about to make, waiting for its turn.
type step struct {
	op    string        // "PUT key", …; "" when the actor has finished
	grant chan struct{} // closed to let the call go
}

// actor is a bucket whose calls, while gated, each wait for a scheduler
// to grant them: the scheduler then decides the order of two actors'
// calls, one call at a time.
type actor struct {
	s3cache.Bucket
	name  string
	gated atomic.Bool
	steps chan<- step
}

func (a *actor) wait(op string) {
	if !a.gated.Load() {
		return
	}
	g := make(chan struct{})
	a.steps <- step{op: a.name + ":" + op, grant: g}
	<-g
}

func (a *actor) Put(ctx context.Context, key string, r io.Reader, size int64, o s3cache.PutOptions) error {
	a.wait("PUT " + key)
	return a.Bucket.Put(ctx, key, r, size, o)
}

func (a *actor) Stat(ctx context.Context, key string) (s3cache.ObjectInfo, error) {
	a.wait("HEAD " + key)
	return a.Bucket.Stat(ctx, key)
}

func (a *actor) Delete(ctx context.Context, keys ...string) error {
	a.wait("DELETE " + strings.Join(keys, ","))
	return a.Bucket.Delete(ctx, keys...)
}

func (a *actor) List(ctx context.Context, prefix string, fn func(s3cache.ObjectInfo) error) error {
	a.wait("LIST " + prefix)
	return a.Bucket.List(ctx, prefix, fn)
}

// schedule runs fns, each in its own goroutine making its calls through
// its own gated actor, one call at a time in an order drawn from rng, and
// returns the order (the interleaving).
func schedule(rng *rand.Rand, steps chan step, fns ...func()) []string {
	for _, fn := range fns {
		go func() {
			defer func() { steps <- step{} }()
			fn()
		}()
	}
	var order []string
	var waiting []step
	for live := len(fns); live > 0; {
		// Every live actor is about to call, or has finished.
		for len(waiting) < live {
			s := <-steps
			if s.op == "" {
				live--
				continue
			}
			waiting = append(waiting, s)
		}
		if live == 0 {
			break
		}
		i := rng.IntN(len(waiting))
		order = append(order, waiting[i].op)
		close(waiting[i].grant)
		waiting = append(waiting[:i], waiting[i+1:]...)
	}
	return order
}

// stepClock is a local clock that moves a second at each reading: Check
// never reuses a confirmation, and locks never age.
func stepClock() func() time.Time {
	var n atomic.Int64
	t0 := time.Now()
	return func() time.Time { return t0.Add(time.Duration(n.Add(1)) * time.Second) }
}

// TestRefreshUnlockStress races a holder's refresh against `unlock --all`
// (RemoveStale) in thousands of interleavings, on a real S3 server
// (versitygw) and on the file bucket. Most rounds are scheduled: every
// call of either side waits for its turn, drawn at random, so that each
// round is one interleaving of whole calls; the rest run freely, at
// once. After each round no lock object may be left (one would be the
// removed lock come back, or kept past the unlock under its next key),
// and the holder must find its lock lost. (A free round on the file
// bucket, whose LIST is a directory read, showed that an unlock listing
// once may miss both keys: RemoveStale lists at least twice.) Before refreshes wrote a new
// key and then checked the old one, a removal between the holder's HEAD
// and its rewrite was undone.
func TestRefreshUnlockStress(t *testing.T) {
	srv := s3test.Start(t, s3test.VersityGW)
	fb, err := s3cache.NewFileBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name             string
		b                s3cache.Bucket
		scheduled, freed int
	}{
		{"versitygw", srv.Open(t, srv.Bucket), 400, 100},
		{"file", fb, 1500, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stressRefresh(t, tc.b, tc.scheduled, tc.freed)
		})
	}
}

func stressRefresh(t *testing.T, b s3cache.Bucket, scheduled, freed int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	steps := make(chan step)
	holderB := &actor{Bucket: b, name: "holder", steps: steps}
	removerB := &actor{Bucket: b, name: "unlock", steps: steps}
	opts := lock.Options{Command: "stress", Settle: time.Millisecond, Refresh: time.Hour, StaleAfter: 24 * 365 * time.Hour, Clock: stepClock()}
	var resurrected, notLost, lostInRefresh, keptAfterRefresh int
	orders := map[string]bool{}
	for round := range scheduled + freed {
		l, err := lock.Acquire(ctx, holderB, lock.Shared, opts)
		if err != nil {
			t.Fatal(err)
		}
		var refreshErr, removeErr error
		var gone []lock.Info
		refresh := func() { refreshErr = l.Refresh(ctx) }
		remove := func() { gone, removeErr = lock.RemoveStale(ctx, removerB, 0, true) }
		if round < scheduled {
			holderB.gated.Store(true)
			removerB.gated.Store(true)
			order := schedule(rng, steps, refresh, remove)
			holderB.gated.Store(false)
			removerB.gated.Store(false)
			orders[strings.Join(shape(order), " ")] = true
		} else {
			var wg sync.WaitGroup
			start := make(chan struct{})
			for _, fn := range []func(){refresh, remove} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					fn()
				}()
			}
			close(start)
			wg.Wait()
		}
		if removeErr != nil {
			t.Fatal(removeErr)
		}
		switch {
		case errors.Is(refreshErr, lock.ErrLost):
			lostInRefresh++
		case refreshErr != nil:
			t.Fatalf("refresh: %v", refreshErr)
		default:
			keptAfterRefresh++
		}
		left, err := lock.List(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		checkErr := l.Check(ctx)
		if len(gone) == 0 {
			t.Errorf("round %d: unlock --all removed nothing; the holder's key is %s", round, l.Key())
		}
		if len(left) > 0 {
			resurrected++
			t.Errorf("round %d: %s is in the bucket after unlock --all removed %d (holder's key %s, refresh: %v)", round, left[0].Key, len(gone), l.Key(), refreshErr)
		}
		if !errors.Is(checkErr, lock.ErrLost) {
			notLost++
			t.Errorf("round %d: Check after unlock --all: %v; want ErrLost", round, checkErr)
		}
		if _, err := lock.RemoveStale(ctx, b, 0, true); err != nil {
			t.Fatal(err)
		}
		l.Release()
		if t.Failed() && resurrected+notLost > 20 {
			break
		}
	}
	t.Logf("%d rounds (%d scheduled, %d distinct interleavings; %d free): refresh found the lock lost in %d, kept it in %d; %d resurrections, %d holders not told",
		scheduled+freed, scheduled, len(orders), freed, lostInRefresh, keptAfterRefresh, resurrected, notLost)
}

// shape names the calls of an interleaving without their keys, but with
// how many lock keys each names.
func shape(order []string) []string {
	out := make([]string, len(order))
	for i, op := range order {
		verb, keys, _ := strings.Cut(op, " ")
		out[i] = fmt.Sprintf("%s(%d)", verb, strings.Count(keys, lock.Prefix+lock.Shared))
	}
	return out
}

// TestRefreshRenames: a refresh moves the lock to a new key of the same
// holder (Owns knows them all), leaves only that one, and keeps the
// holder's description; Release removes it.
func TestRefreshRenames(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	opts := fast
	opts.Refresh = time.Hour
	l, err := lock.Acquire(ctx, b, lock.Shared, opts)
	if err != nil {
		t.Fatal(err)
	}
	other, err := lock.Acquire(ctx, b, lock.Shared, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	k0 := l.Key()
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	k1 := l.Key()
	if k1 == k0 || !l.Owns(k0) || !l.Owns(k1) || l.Owns(other.Key()) || other.Owns(k1) {
		t.Fatalf("keys %s then %s (other %s): want a new key, each owned by its own holder only", k0, k1, other.Key())
	}
	infos, err := lock.List(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, i := range infos {
		keys = append(keys, i.Key)
	}
	if !slices.Contains(keys, k1) || slices.Contains(keys, k0) || len(keys) != 2 {
		t.Fatalf("locks after a refresh: %v; want %s and the other's", keys, k1)
	}
	before, _ := lock.Read(ctx, b, lock.Info{Key: k1})
	if before.PID != os.Getpid() || before.Created.IsZero() || before.PIDStart == 0 {
		t.Errorf("the refreshed lock says %+v", before)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check after a refresh: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, k1); !errors.Is(err, s3cache.ErrNotFound) {
		t.Fatalf("%s after Release: %v", k1, err)
	}
}
