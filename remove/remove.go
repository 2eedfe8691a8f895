package remove

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// ErrNotInCache is returned (wrapped) when a path asked for has no
// narinfo in the cache; nothing is deleted.
var ErrNotInCache = errors.New("not in the cache")

// ErrUnreadable is returned (wrapped) when a listed narinfo cannot be
// read or parsed: it might refer to a path being removed, so nothing is
// deleted.
var ErrUnreadable = errors.New("removed nothing")

// Options tune Run.
type Options struct {
	// WithReferrers removes the paths that refer to the ones asked for,
	// transitively, instead of refusing (ErrReferenced).
	WithReferrers bool
	// DryRun plans and reports, and deletes nothing.
	DryRun bool
	// Jobs bounds the narinfo GETs in flight; 0 means gc's default.
	Jobs int
	// Lock, if set, is how the exclusive lock is taken (not in a dry run).
	Lock *lock.Options
	// Now, if set, is the time the NARs are condemned at instead of the
	// server's clock (tests simulate days with it, as with gc.Options.Now).
	Now func() time.Time
	// Logger receives progress records; nil discards them.
	Logger *slog.Logger
}

// Report is what Run removed (or would, in a dry run); its JSON form is
// what `rm --json` prints.
type Report struct {
	// DryRun reports that nothing was deleted.
	DryRun bool `json:"dryRun"`
	// Removed are the store paths removed, in the order their narinfos
	// were deleted: referrers first.
	Removed []string `json:"removed"`
	// Referrers are those of Removed that were not asked for: the paths
	// that refer to them, directly or through others.
	Referrers []string `json:"referrers"`
	// Roots lists the removed paths that root manifests list.
	Roots []RootUse `json:"roots"`
	// NARs are the NAR keys that no narinfo names any more, condemned
	// for gc; NARBytes is their size.
	NARs     []string `json:"nars"`
	NARBytes int64    `json:"narBytes"`
	// Deleted is the number of objects deleted (narinfos and listings).
	Deleted int `json:"deleted"`
	// Batches is the number of delete requests made (or planned).
	Batches int `json:"batches"`
}

// RootUse is a removed path that root manifests list.
type RootUse struct {
	// Path is the store path.
	Path string `json:"path"`
	// Roots are the names of the roots with a manifest that lists it.
	Roots []string `json:"roots"`
}

// Run removes paths (full store paths, base names or hash parts) from b,
// as the package documentation describes.
func Run(ctx context.Context, b s3cache.Bucket, paths []string, opts Options) (*Report, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var l *lock.Lock
	if opts.Lock != nil && !opts.DryRun {
		var err error
		if l, err = lock.Acquire(ctx, b, lock.Exclusive, *opts.Lock); err != nil {
			return nil, err
		}
		defer l.Release()
	}
	insp := gc.Options{Jobs: opts.Jobs, Logger: opts.Logger}
	if l != nil {
		insp.Now = l.Now
	}
	plan, err := gc.Inspect(ctx, b, insp)
	if err != nil {
		return nil, err
	}
	p, err := newPlan(plan, paths, opts.WithReferrers)
	if err != nil {
		return nil, err
	}
	rep := p.report(opts.DryRun)
	if opts.DryRun {
		return rep, nil
	}
	if err := p.delete(ctx, b, l, rep); err != nil {
		return rep, err
	}
	if len(rep.NARs) > 0 {
		now, err := serverNow(ctx, b, l)
		if err != nil {
			return rep, err
		}
		if opts.Now != nil {
			now = opts.Now()
		}
		if err := gc.Condemn(ctx, b, now, rep.NARs); err != nil {
			return rep, err
		}
	}
	opts.Logger.Debug("rm done", "removed", len(rep.Removed), "deleted", rep.Deleted, "condemned", len(rep.NARs))
	return rep, nil
}

// serverNow is the server's time now: the lock's clock, else one read
// from the server.
func serverNow(ctx context.Context, b s3cache.Bucket, l *lock.Lock) (time.Time, error) {
	if l != nil {
		return l.Now(), nil
	}
	c, err := lock.NewClock(ctx, b, nil)
	if err != nil {
		return time.Time{}, err
	}
	return c.Now(), nil
}

// checkLock makes sure the exclusive lock is still held before a batch.
func checkLock(ctx context.Context, l *lock.Lock, deleted int) error {
	if l == nil {
		return nil
	}
	if err := l.Check(ctx); err != nil {
		return fmt.Errorf("stopping before deleting (%d objects deleted so far): %w", deleted, err)
	}
	return nil
}
