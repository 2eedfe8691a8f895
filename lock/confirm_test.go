package lock_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// heads is a bucket whose HEADs can be held: while hold is set, a HEAD
// that starts waits, before it is sent, until the holds are let go. It
// counts the HEADs it has held, those of them that came back, and the
// most ever in flight.
type heads struct {
	s3cache.Bucket
	hold atomic.Bool

	mu       sync.Mutex
	let      chan struct{} // closed to let the held HEADs go
	held     int
	back     int
	inFlight int
	most     int
}

func newHeads(b s3cache.Bucket) *heads { return &heads{Bucket: b, let: make(chan struct{})} }

func (h *heads) Stat(ctx context.Context, key string) (s3cache.ObjectInfo, error) {
	h.mu.Lock()
	h.inFlight++
	h.most = max(h.most, h.inFlight)
	let := h.let
	hold := h.hold.Load()
	if hold {
		h.held++
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.inFlight--
		h.mu.Unlock()
	}()
	if !hold {
		return h.Bucket.Stat(ctx, key)
	}
	defer func() {
		h.mu.Lock()
		h.back++
		h.mu.Unlock()
	}()
	select {
	case <-let:
	case <-ctx.Done():
		return s3cache.ObjectInfo{}, ctx.Err()
	}
	return h.Bucket.Stat(ctx, key)
}

// release lets the held HEADs go; the next ones are held while hold is
// set.
func (h *heads) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.let)
	h.let = make(chan struct{})
}

func (h *heads) counts() (held, inFlight, most int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held, h.inFlight, h.most
}

// settled says whether every HEAD held so far has come back.
func (h *heads) settled() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.back == h.held
}

// until spins until cond holds (it watches goroutines of the test reach
// a state; it does not wait for time to pass).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	give := time.Now().Add(time.Minute) // a hang's guard, not a timing
	for !cond() {
		if time.Now().After(give) {
			t.Fatalf("never: %s", what)
		}
		runtime.Gosched()
	}
}

// TestCheckConfirmer checks, on a real server with a local clock that
// moves only when the test says, that Check takes a confirmation made in
// the background and makes no request of its own: while every HEAD is
// held, Checks with a fresh confirmation pass, and Checks without one all
// wait for the confirmer's HEADs (never more than it keeps in flight),
// then pass; that an unlock makes Check fail once Settle/2 has passed;
// and that a HEAD of the key a refresh has just replaced, coming back
// not found, does not lose the lock.
func TestCheckConfirmer(t *testing.T) {
	srv := s3test.Start(t, s3test.VersityGW)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, l *lock.Lock, h *heads, clock *manualClock)
	}{
		{"fresh confirmation: no request", func(t *testing.T, l *lock.Lock, h *heads, clock *manualClock) {
			h.hold.Store(true)
			for range 1000 {
				if err := l.Check(ctx); err != nil {
					t.Fatalf("Check with a fresh confirmation: %v", err)
				}
			}
			if _, waited := l.ConfirmStats(); waited != 0 {
				t.Fatalf("%d Checks waited for a HEAD; want none", waited)
			}
		}},
		{"stale confirmation: wait for the confirmer", func(t *testing.T, l *lock.Lock, h *heads, clock *manualClock) {
			h.hold.Store(true)
			clock.add(fast.Settle / 2)
			const checks = 4 * lock.MaxConfirming
			errs := make(chan error, checks)
			for range checks {
				go func() { errs <- l.Check(ctx) }()
			}
			until(t, "every Check waits", func() bool { _, w := l.ConfirmStats(); return w == checks })
			until(t, "the confirmer fills its slots", func() bool { n, _, _ := h.counts(); return n >= lock.MaxConfirming })
			if _, _, most := h.counts(); most > lock.MaxConfirming {
				t.Fatalf("%d HEADs in flight for %d waiting Checks; want at most the confirmer's %d", most, checks, lock.MaxConfirming)
			}
			h.hold.Store(false)
			h.release()
			for range checks {
				if err := <-errs; err != nil {
					t.Fatalf("Check after the confirmer's HEAD: %v", err)
				}
			}
		}},
		{"unlock: lost within Settle/2", func(t *testing.T, l *lock.Lock, h *heads, clock *manualClock) {
			if err := l.Check(ctx); err != nil {
				t.Fatal(err)
			}
			b := srv.Open(t, srv.Bucket)
			if gone, err := lock.RemoveStale(ctx, b, 0, true); err != nil || len(gone) != 1 {
				t.Fatalf("RemoveStale(all) = %v, %v; want the one lock", gone, err)
			}
			clock.add(fast.Settle / 2)
			if err := l.Check(ctx); !errors.Is(err, lock.ErrLost) {
				t.Fatalf("Check Settle/2 after unlock: %v; want ErrLost", err)
			}
			if err := l.Check(ctx); !errors.Is(err, lock.ErrLost) {
				t.Fatalf("Check again: %v; want ErrLost", err)
			}
		}},
		{"refresh: the old key's HEAD", func(t *testing.T, l *lock.Lock, h *heads, clock *manualClock) {
			h.hold.Store(true)
			l.Prepare()
			until(t, "a HEAD of the old key is held", func() bool { n, _, _ := h.counts(); return n > 0 })
			h.hold.Store(false)
			old := l.Key()
			if err := l.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			if l.Key() == old {
				t.Fatal("the refresh kept the key")
			}
			h.release()
			until(t, "the held HEADs of the old key come back", h.settled)
			clock.add(fast.Settle / 2)
			if err := l.Check(ctx); err != nil {
				t.Fatalf("Check after a refresh, the old key's HEADs not found: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHeads(srv.Open(t, srv.Bucket))
			clock := &manualClock{t: time.Now()}
			opts := fast
			opts.Refresh = time.Hour
			opts.Clock = clock.now
			l, err := lock.Acquire(ctx, h, lock.Shared, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				h.hold.Store(false)
				h.release()
				l.Release()
				lock.RemoveStale(ctx, h.Bucket, 0, true)
			}()
			tc.run(t, l, h, clock)
		})
	}
}

// TestConfirmerStops: the confirmer stops at Release, leaving no HEAD in
// flight, and Check then fails; it stops when no Check comes, and the
// next Check starts it again.
func TestConfirmerStops(t *testing.T) {
	srv := s3test.Start(t, s3test.VersityGW)
	ctx := context.Background()
	h := newHeads(srv.Open(t, srv.Bucket))
	l, err := lock.Acquire(ctx, h, lock.Shared, fast)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}
	done, running := l.ConfirmerDone()
	if !running {
		t.Fatal("no confirmer runs after a Check")
	}
	select {
	case <-done: // idle: no Check for 10 × Settle
	case <-time.After(time.Minute):
		t.Fatal("the confirmer still runs a minute after the last Check")
	}
	if _, running := l.ConfirmerDone(); running {
		t.Fatal("the confirmer runs after it said it stopped")
	}
	before, _ := l.ConfirmStats()
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check after the confirmer went idle: %v", err)
	}
	if _, running := l.ConfirmerDone(); !running {
		t.Fatal("Check did not start the confirmer again")
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	_, inFlight, _ := h.counts()
	after, _ := l.ConfirmStats()
	if _, running := l.ConfirmerDone(); running || inFlight != 0 {
		t.Fatalf("after Release: confirmer running %v, %d HEADs in flight; want none", running, inFlight)
	}
	if err := l.Check(ctx); !errors.Is(err, lock.ErrLost) || !strings.Contains(err.Error(), "released") {
		t.Fatalf("Check after Release: %v; want ErrLost", err)
	}
	if n, _ := l.ConfirmStats(); n != after {
		t.Fatalf("Check after Release made %d HEADs", n-after)
	}
	t.Logf("HEADs: %d before going idle, %d in all", before, after)
}

// TestCheckOverLatency runs chains of dependent writes through
// toxiproxy's latency, each after a Check, as a push writes its
// narinfos. Each Check would make a HEAD of its own if it could not reuse
// the last one's (at 80 ms, a HEAD is under Settle/2 = 100 ms old for 20
// ms at most). Most find a confirmation ready; the others wait for the
// confirmer's next HEAD, a few ms away. How many wait depends on the
// round trip's jitter: at 40 ms there is slack and nearly none do (Check
// making its own HEADs, every other one would: HEAD+PUT, PUT, HEAD+PUT…;
// the bound of a third keeps clear of both under a loaded -race run); at
// 80 ms (logged only) it depends on the machine's load.
func TestCheckOverLatency(t *testing.T) {
	srv := s3test.Start(t, s3test.VersityGW)
	for _, tc := range []struct {
		rtt     int // ms
		waitMax int // of links
	}{
		{40, links / 3},
		{80, links},
	} {
		t.Run(fmt.Sprintf("%dms", tc.rtt), func(t *testing.T) {
			heads, waited := chain(t, srv, tc.rtt)
			t.Logf("%d links at %d ms: %d Checks waited for a HEAD; the confirmer made %d HEADs", links, tc.rtt, waited, heads)
			if waited > tc.waitMax {
				t.Fatalf("%d of %d Checks waited for a HEAD; want at most %d", waited, links, tc.waitMax)
			}
		})
	}
}

const links = 50

// chain writes links objects one after another through a latency of rtt
// ms, each after a Check, and returns the confirmer's HEADs and the
// Checks that waited.
func chain(t *testing.T, srv *s3test.Server, rtt int) (heads, waited int) {
	x := s3test.NewToxi(t, srv.Endpoint)
	x.Toxic(t, "rtt", "latency", "downstream", map[string]any{"latency": rtt})
	u, err := s3cache.ParseURL(x.StoreURL(srv.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := s3cache.OpenS3(ctx, u, srv.Options())
	if err != nil {
		t.Fatal(err)
	}
	l, err := lock.Acquire(ctx, b, lock.Shared, lock.Options{Command: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	l.Prepare()
	for i := range links {
		if err := l.Check(ctx); err != nil {
			t.Fatal(err)
		}
		body := strings.Repeat("x", i)
		if err := b.Put(ctx, "chain/"+s3test.RandomHex(4), strings.NewReader(body), int64(len(body)), s3cache.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return l.ConfirmStats()
}
