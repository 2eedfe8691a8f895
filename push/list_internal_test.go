package push

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// TestKeyShare checks the key-space arithmetic of parallelList: shares
// grow with keys, and shareKey inverts keyShare to six characters.
func TestKeyShare(t *testing.T) {
	keys := []string{"", "0", "00000000", "0z", "1", "9zzz", "a", "d", "e", "f", "gc/condemned/x", "locks/shared-1.json",
		"n", layout.NarDir, narEnd, "nar0", layout.CacheInfoKey, "roots/x", "stats/history.jsonl", "z", "zzzzzz", "zzzzzzzz"}
	prev := -1.0
	for _, k := range keys {
		s := keyShare(k)
		if s < prev || s < 0 || s > 1 {
			t.Errorf("keyShare(%q) = %v after %v: not increasing in [0, 1]", k, s, prev)
		}
		prev = s
	}
	for range 1000 {
		x := rand.Float64()
		k := shareKey(x)
		if len(k) != 6 {
			t.Fatalf("shareKey(%v) = %q, want six characters", x, k)
		}
		if got := keyShare(k); got > x || x-got > 1.0/(1<<30) {
			t.Fatalf("keyShare(shareKey(%v)) = %v", x, got)
		}
	}
}

// TestParallelList lists a bucket of several thousand narinfos, NARs and
// other objects on each real server: the narinfos found are exactly the
// bucket's, the NARs cost no request, and the requests are about those of
// one listing from start to end.
func TestParallelList(t *testing.T) {
	ctx := context.Background()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			b := srv.Open(t, srv.NewBucket(t))
			rng := rand.New(rand.NewPCG(1, 2))
			var want, keys []string
			for range 3300 {
				h := shareKey(rng.Float64()) + shareKey(rng.Float64()) + shareKey(rng.Float64()) + shareKey(rng.Float64()) + shareKey(rng.Float64()) + "ab"
				want = append(want, layout.NarInfoKey(h))
				keys = append(keys, layout.NarInfoKey(h))
				if rng.IntN(4) == 0 {
					keys = append(keys, layout.NarKey(h, ".xz"))
				}
			}
			for i := range 150 {
				keys = append(keys, fmt.Sprintf("roots/r%d/m.json", i), fmt.Sprintf("gc/condemned/%d.json", i))
			}
			keys = append(keys, layout.CacheInfoKey, "locks/shared-1.json", "stats/history.jsonl")
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(32)
			for _, k := range keys {
				g.Go(func() error { return b.Put(gctx, k, strings.NewReader("x"), 1, s3cache.PutOptions{}) })
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			var requests atomic.Int32
			var got []string
			err := listNarinfos(ctx, b, func() bool { requests.Add(1); return true }, func() {}, func(o s3cache.ObjectInfo) { got = append(got, o.Key) })
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("listed %d narinfos, want the bucket's %d", len(got), len(want))
			}
			// One listing from start to end, NARs skipped, takes
			// ceil(non-NAR keys / 1000) requests; the ranges add at most
			// one partial page each.
			sequential := (3300 + 300 + 3 + 999) / 1000
			n := int(requests.Load())
			t.Logf("%d requests for %d narinfos (%d for one listing from start to end)", n, len(want), sequential)
			if n < sequential || n > 2*sequential+1 {
				t.Errorf("%d LIST requests, want between %d and %d", n, sequential, 2*sequential+1)
			}
			// A budget stops the listing.
			requests.Store(0)
			err = listNarinfos(ctx, b, func() bool { return requests.Add(1) <= 2 }, func() {}, func(s3cache.ObjectInfo) {})
			if err != errListTooLong {
				t.Errorf("a listing allowed two requests: %v, want errListTooLong", err)
			}
		})
	}
}
