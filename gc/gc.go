package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

// DefaultGrace is the default of Options.Grace: longer than any push.
const DefaultGrace = 24 * time.Hour

// ErrFailClosed is returned (wrapped) when gc deletes nothing because it
// cannot account for something in the bucket.
var ErrFailClosed = errors.New("gc deleted nothing")

// Options tune Run.
type Options struct {
	// KeepLast keeps, per root name, the newest KeepLast manifests.
	KeepLast int
	// KeepWithin keeps the manifests younger than this.
	KeepWithin time.Duration
	// Grace protects objects younger than it, and is the delay between
	// condemning and deleting; 0 means DefaultGrace, negative means none.
	Grace time.Duration
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// Now, if set, is the time gc runs at instead of the server's clock
	// (tests simulate weeks with it). By default gc reads the server's
	// clock (lock.Clock), which stamps the objects' LastModified, so a
	// local clock hours ahead does not make young objects look old.
	Now func() time.Time
	// Clock is the local clock; nil means time.Now. Only its passing is
	// used, to advance the server's time read once; tests skew it.
	Clock func() time.Time
	// Jobs bounds the GETs in flight; 0 means 32.
	Jobs int
	// Lock, if set, is how the exclusive lock is taken (not in a dry run).
	Lock *lock.Options
	// Logger receives progress records; nil discards them.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	switch {
	case o.Grace == 0:
		o.Grace = DefaultGrace
	case o.Grace < 0:
		o.Grace = 0
	}
	if o.Jobs <= 0 {
		o.Jobs = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// run is one gc's state, filled in phase by phase: readClock sets now
// (list raises it), list sets objects, index, records and storeDir,
// retain sets kept and manifests, readNarInfos sets infos; mark and
// decide read them all, and every phase adds to rep.
type run struct {
	b    s3cache.Bucket
	opts Options
	log  *slog.Logger
	now  time.Time // the server's time, raised to the newest LastModified listed
	rep  *Report
	lock *lock.Lock // held, or nil

	objects   map[string]s3cache.ObjectInfo // the listing, by key
	index     roots.Index                   // the root names and manifest keys listed
	records   []string                      // condemned record keys
	storeDir  string                        // from nix-cache-info, else the default
	kept      []string                      // the kept manifests' keys
	manifests []*roots.Manifest             // the kept manifests, as kept; nil where unread
	infos     map[string]*narinfo.NarInfo   // by hash part
	uploads   int                           // unfinished multipart uploads listed; -1 if none can be
	gets      atomic.Int64

	// deriverUnknown holds the hash parts of infos known from an entry
	// of a manifest that records no derivers (an older one); outPaths
	// the outPath hash part of each realisation read (readBelongings).
	deriverUnknown map[string]bool
	outPaths       map[string]string

	// problems are why gc must delete nothing (fail closed); Run stops
	// at the first phase that finds any, Inspect carries on.
	mu       sync.Mutex
	problems []string
}

func newRun(b s3cache.Bucket, opts Options) *run {
	opts.defaults()
	return &run{b: b, opts: opts, log: opts.Logger, rep: &Report{DryRun: opts.DryRun, Actions: []Action{}}}
}

// Run collects garbage in b (see the package documentation): under the
// exclusive lock, it plans (list, retain, read, mark, decide) and then
// sweeps, unless it is a dry run.
func Run(ctx context.Context, b s3cache.Bucket, opts Options) (*Report, error) {
	r := newRun(b, opts)
	if r.opts.Lock != nil && !r.opts.DryRun {
		lo := *r.opts.Lock
		if lo.Clock == nil {
			lo.Clock = r.opts.Clock
		}
		l, err := lock.Acquire(ctx, b, lock.Exclusive, lo)
		if err != nil {
			return nil, err
		}
		defer l.Release()
		r.lock = l
	}
	p, err := r.plan(ctx, false)
	if err != nil {
		return nil, err
	}
	if r.opts.DryRun {
		r.report(p)
		return r.rep, nil
	}
	if err := r.sweep(ctx, p); err != nil {
		return r.rep, err
	}
	r.recordRun(ctx)
	return r.rep, nil
}

// plan reads the bucket and decides, phase by phase; after each phase
// that may find problems it stops, unless tolerant (Inspect).
func (r *run) plan(ctx context.Context, tolerant bool) (*planned, error) {
	if err := r.readClock(ctx); err != nil {
		return nil, err
	}
	// List: one LIST of the bucket, and its store directory.
	if err := r.list(ctx); err != nil {
		return nil, err
	}
	if err := r.failClosed(tolerant); err != nil {
		return nil, err
	}
	// Retain: expire root manifests past the policy, read the kept ones.
	expired, err := r.retain(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.failClosed(tolerant); err != nil {
		return nil, err
	}
	// Read: every narinfo's NAR and references, from a manifest or a GET.
	if err := r.readNarInfos(ctx); err != nil {
		return nil, err
	}
	r.checkRooted()
	// The derivers of the narinfos old logs may belong to, and the
	// outPaths of old realisations.
	if err := r.readBelongings(ctx); err != nil {
		return nil, err
	}
	if err := r.failClosed(tolerant); err != nil {
		return nil, err
	}
	// Mark: the closure of the kept manifests and the young narinfos.
	live := r.mark()
	// Decide: condemn or delete the rest, given the earlier condemnations.
	since, err := r.readCondemned(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.failClosed(tolerant); err != nil {
		return nil, err
	}
	del, condemned := r.decide(live, since)
	uploads, err := r.staleUploads(ctx)
	if err != nil {
		return nil, err
	}
	return &planned{batches: r.batches(expired, del), condemned: condemned, uploads: uploads}, nil
}

// readClock sets now: Options.Now, else the server's clock (the lock's,
// when one is held).
func (r *run) readClock(ctx context.Context) error {
	switch {
	case r.opts.Now != nil:
		r.now = r.opts.Now().UTC()
	case r.lock != nil:
		r.now = r.lock.Now()
	default:
		c, err := lock.NewClock(ctx, r.b, r.opts.Clock)
		if err != nil {
			return err
		}
		r.now = c.Now()
	}
	return nil
}

// problem records a reason to delete nothing.
func (r *run) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// failClosed returns the error of the problems found, if any, unless
// tolerant (Inspect).
func (r *run) failClosed(tolerant bool) error {
	if tolerant || len(r.problems) == 0 {
		return nil
	}
	slices.Sort(r.problems)
	return fmt.Errorf("%s: %w", strings.Join(r.problems, "; "), ErrFailClosed)
}

// get reads a small object, counting the GET.
func (r *run) get(ctx context.Context, key string) ([]byte, error) {
	r.gets.Add(1)
	return s3cache.ReadSmall(ctx, r.b, key, 1<<28) // its errors name the key
}

// young reports whether o was written less than Grace ago.
func (r *run) young(o s3cache.ObjectInfo) bool { return r.now.Sub(o.LastModified) < r.opts.Grace }
