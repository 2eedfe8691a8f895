package push

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// Listing is a listing of the cache's narinfos, started before the number
// of paths to check is known (StartListing) so that it overlaps the
// closure computation, or by the presence check itself. It makes at most
// a budget of LIST requests, counted as made; a listing over budget stops
// before its next request and is of no use.
type Listing struct {
	cancel context.CancelFunc
	done   chan struct{}
	have   map[string]bool // hash parts with a narinfo; read after done
	err    error           // nil when the listing is complete; read after done

	mu       sync.Mutex
	requests int           // LIST requests made so far
	budget   int           // LIST requests allowed in all
	decided  bool          // whether budget is final
	wake     chan struct{} // closed when budget becomes final
}

// prefetchRequests bounds the LIST requests of an early listing before the
// number of paths is known; it then waits for the presence check to say
// whether it may go on.
const prefetchRequests = 20

// StartListing starts listing the bucket's narinfos in the background, up
// to prefetchRequests requests, and then as many as the presence check of
// Push allows once it knows how many paths there are (see findPresent).
// Push uses the listing if it completes. The listing stops when ctx is
// cancelled or Stop is called; a caller that ends up not pushing must do
// one of the two.
func StartListing(ctx context.Context, b s3cache.Bucket) *Listing {
	return startListing(ctx, b, prefetchRequests, false)
}

func startListing(ctx context.Context, b s3cache.Bucket, budget int, decided bool) *Listing {
	ctx, cancel := context.WithCancel(ctx)
	l := &Listing{cancel: cancel, done: make(chan struct{}), have: make(map[string]bool), budget: budget, decided: decided, wake: make(chan struct{})}
	if decided {
		close(l.wake)
	}
	go func() {
		defer close(l.done)
		l.err = listNarinfos(ctx, b, func() bool { return l.allow(ctx) }, func() { l.settle(ctx) }, func(o s3cache.ObjectInfo) {
			h, _ := layout.NarInfoHash(o.Key)
			l.have[h] = true
		})
	}()
	return l
}

// Stop ends the listing; its result is then incomplete unless it had
// already completed.
func (l *Listing) Stop() { l.cancel() }

// Requests returns the number of LIST requests the listing has made.
func (l *Listing) Requests() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests
}

// settle waits until the budget is final (or ctx is done).
func (l *Listing) settle(ctx context.Context) {
	l.mu.Lock()
	wake := l.wake
	l.mu.Unlock()
	select {
	case <-wake:
	case <-ctx.Done():
	}
}

// allow reports whether the listing may make one more request, and counts
// it. While the budget is not final and is spent, it waits until it is.
func (l *Listing) allow(ctx context.Context) bool {
	l.mu.Lock()
	for {
		if l.requests < l.budget {
			l.requests++
			l.mu.Unlock()
			return true
		}
		if l.decided {
			l.mu.Unlock()
			return false
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return false
		}
		l.mu.Lock()
	}
}

// decide makes the budget final once the number of paths n is known:
// HEADs would cost n requests, so the listing may make requests while it
// has cost fewer than n in all, counting those it made before. Only the
// first call counts.
func (l *Listing) decide(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.decided {
		return
	}
	l.decided = true
	l.budget = n - 1
	close(l.wake)
}

// result waits for the listing and returns the set of hash parts with a
// narinfo, and whether the listing is complete and usable.
func (l *Listing) result(ctx context.Context) (map[string]bool, bool) {
	select {
	case <-l.done:
		return l.have, l.err == nil
	case <-ctx.Done():
		return nil, false
	}
}

var (
	// errListTooLong stops a listing that would cost more than its budget.
	errListTooLong = errors.New("listing would cost more requests than HEADs")
)

// listNarinfos calls fn (never concurrently) for every narinfo object of
// the bucket, asking allow before each LIST request; it fails with
// errListTooLong when allow says no. settle blocks until allow's budget is
// final: a parallel listing fans out beyond its first pages only then, so
// that an early listing makes a handful of requests before it is known how
// many paths there are (a push of one path into a large bucket then costs
// a few LISTs at once and a HEAD, however slowly the closure was
// computed). Narinfos lie at the top level; the
// NARs, about as many, all sort under nar/. A bucket that can start a
// listing after a key (S3's StartAfter) skips them, and lists in parallel
// (parallelList).
func listNarinfos(ctx context.Context, b s3cache.Bucket, allow func() bool, settle func(), fn func(s3cache.ObjectInfo)) error {
	if _, ok := b.(s3cache.RangeLister); ok {
		return parallelList(ctx, b, allow, settle, fn)
	}
	if !allow() {
		return errListTooLong
	}
	return s3cache.ListPages(ctx, b, "", "", func(p s3cache.Page) error {
		for _, o := range p.Objects {
			if _, ok := layout.NarInfoHash(o.Key); ok {
				fn(o)
			}
		}
		if p.More && !allow() {
			return errListTooLong
		}
		return nil
	})
}

// listRanges bounds the key ranges listed at once.
const listRanges = 8

// firstRanges are the ranges of the key space whose first pages are
// listed at once, before anything is known of the bucket: the keys before
// nar/ cut in two, and those after it (three shares of about a third of
// the narinfo keys each). A bucket of up to about 2500 narinfos is listed
// in one round trip; one of fewer than 1000 costs two LISTs more than a
// listing from the start would. More ranges would save a round trip only
// for larger buckets, and would cost a server that answers every LIST
// with a full page (whatever lies past a range's end) that much more work.
var firstRanges = append(shares(keyRange{"", layout.NarDir}, 2), keyRange{narEnd, ""})

// keyRange is the keys after lo and before hi ("" for no end).
type keyRange struct{ lo, hi string }

// parallelList lists the narinfos of a bucket that can start a listing
// after a key. The first page of each of firstRanges is listed at once
// (narinfo keys are hashes, spread evenly); then the rest of each range
// that had more is cut into ranges of about a page each, from the part of
// it its first page covered, listed listRanges at a time. No range spans nar/, the NARs, about as many as
// the narinfos: a range that meets it jumps over it. This makes about as
// many requests as one listing from start to end, in a fraction of the
// time.
func parallelList(ctx context.Context, b s3cache.Bucket, allow func() bool, settle func(), fn func(s3cache.ObjectInfo)) error {
	var mu sync.Mutex
	// listRange lists r, from nar/ on jumping to narEnd. With onePage it
	// stops after one page and returns how many keys it saw, the key to
	// go on after, and whether there may be more.
	listRange := func(ctx context.Context, r keyRange, onePage bool) (seen int, next string, more bool, err error) {
		lo := r.lo
		for {
			if !allow() {
				return 0, "", false, errListTooLong
			}
			jumped := false
			err := s3cache.ListPages(ctx, b, "", lo, func(p s3cache.Page) error {
				for _, o := range p.Objects {
					switch {
					case r.hi != "" && o.Key >= r.hi:
						return errRangeDone
					case layout.IsNar(o.Key):
						jumped = true
						return errRangeDone
					}
					if _, ok := layout.NarInfoHash(o.Key); ok {
						mu.Lock()
						fn(o)
						mu.Unlock()
					}
					seen++
					lo = o.Key
				}
				if onePage {
					more = p.More
					return errRangeDone
				}
				if p.More && !allow() {
					return errListTooLong
				}
				return nil
			})
			if err != nil && !errors.Is(err, errRangeDone) {
				return 0, "", false, err
			}
			if !jumped {
				return seen, lo, more, nil
			}
			if lo = narEnd; onePage {
				return seen, lo, r.hi == "" || r.hi > narEnd, nil
			}
		}
	}
	first := firstRanges
	type rest struct {
		keyRange
		seen int
		more bool
	}
	rests := make([]rest, len(first))
	g, gctx := errgroup.WithContext(ctx)
	for i, r := range first {
		g.Go(func() error {
			seen, next, more, err := listRange(gctx, r, true)
			if more {
				rests[i] = rest{keyRange{next, r.hi}, seen, true}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var todo []keyRange
	for i, r := range rests {
		if !r.more {
			continue
		}
		// The first page covered the share from first[i].lo to r.lo of
		// the range: the rest holds about seen*(1-covered)/covered keys.
		from, to := keyShare(first[i].lo), endShare(r.hi)
		covered := 0.0
		if to > from {
			covered = (keyShare(r.lo) - from) / (to - from)
		}
		n := 1
		if covered > 0 {
			n = int(math.Ceil(float64(r.seen) * (1 - covered) / covered / s3cache.ListPageSize))
		}
		todo = append(todo, splitAtNars(shares(r.keyRange, max(1, min(n, 64))))...)
	}
	if len(todo) == 0 {
		return nil
	}
	settle()
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(listRanges)
	for _, r := range todo {
		g.Go(func() error {
			_, _, _, err := listRange(gctx, r, false)
			return err
		})
	}
	return g.Wait()
}

// endShare is the share of the key space before hi, "" being the end.
func endShare(hi string) float64 {
	if hi == "" {
		return 1
	}
	return keyShare(hi)
}

// shares cuts r into n ranges of equal shares of the key space (fewer
// when its keys are too close to cut).
func shares(r keyRange, n int) []keyRange {
	from, to := keyShare(r.lo), endShare(r.hi)
	bounds := []string{r.lo}
	for i := 1; i < n; i++ {
		k := shareKey(from + (to-from)*float64(i)/float64(n))
		if k > bounds[len(bounds)-1] && (r.hi == "" || k < r.hi) {
			bounds = append(bounds, k)
		}
	}
	bounds = append(bounds, r.hi)
	out := make([]keyRange, 0, len(bounds)-1)
	for i := range len(bounds) - 1 {
		out = append(out, keyRange{bounds[i], bounds[i+1]})
	}
	return out
}

// splitAtNars cuts each range across nar/ in two, one on each side:
// jumping over it would cost a request, two ranges list in parallel.
func splitAtNars(rs []keyRange) []keyRange {
	out := make([]keyRange, 0, len(rs)+1)
	for _, r := range rs {
		if r.lo < layout.NarDir && (r.hi == "" || r.hi > narEnd) {
			out = append(out, keyRange{r.lo, layout.NarDir}, keyRange{narEnd, r.hi})
		} else {
			out = append(out, r)
		}
	}
	return out
}

// narEnd, the successor of the prefix nar/ (its last byte incremented:
// "nar0"), sorts after every key under nar/, whatever its bytes, and
// before every key after them.
var narEnd = layout.NarDir[:len(layout.NarDir)-1] + string(layout.NarDir[len(layout.NarDir)-1]+1)

// errRangeDone stops a listing at the end of its range.
var errRangeDone = errors.New("end of range")

// keyShare is the share of the key space (nix32 hash parts, in key order)
// that sorts before key, from its first six characters.
func keyShare(key string) float64 {
	share, unit := 0.0, 1.0
	for i := 0; i < 6 && i < len(key); i++ {
		unit /= 32
		r := strings.IndexByte(layout.HashAlphabet, key[i])
		if r < 0 { // not a hash character: where it sorts among them
			r = sort.Search(32, func(j int) bool { return layout.HashAlphabet[j] > key[i] })
			share += unit * float64(r)
			break
		}
		share += unit * float64(r)
	}
	return share
}

// shareKey is the six-character hash-part prefix at share of the key space.
func shareKey(share float64) string {
	var k [6]byte
	for i := range k {
		share *= 32
		r := min(int(share), 31)
		k[i] = layout.HashAlphabet[r]
		share -= float64(r)
	}
	return string(k[:])
}
