package push

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
)

// attempt carries out a plan: it is the state a push builds up as it
// goes, apart from its configuration (pusher). A push that starts again
// builds a new attempt from a new plan, so nothing of the first carries
// over but the lock it holds.
type attempt struct {
	*pusher
	plan *plan
	lock *lock.Lock                  // the shared lock held, or nil
	gate func(context.Context) error // waits for the lock (enterLock), if any
	// beforeNARs, if set, is waited for before the first NAR upload
	// (pendingLock.listed).
	beforeNARs func(context.Context) error
	written    map[string]*narinfo.NarInfo // by path, after upload
	had        map[string]presentInfo      // by path: narinfos the cache had (readPresent)
	// upstreamOnce writes the upstream record once (recordUpstream);
	// upstreamKey is its key, upstreamErr its failure.
	upstreamOnce sync.Once
	upstreamKey  string
	upstreamErr  error
}

// newAttempt starts carrying out pl, holding held (the shared lock), if
// not nil.
func (p *pusher) newAttempt(pl *plan, held *lock.Lock) *attempt {
	return &attempt{pusher: p, plan: pl, lock: held}
}

// run uploads what the plan says the cache lacks and records the root,
// and returns what it did, so far as it got.
func (a *attempt) run(ctx context.Context) (*Result, error) {
	pl := a.plan
	res := &Result{
		Paths:    a.g.Len(),
		Pushed:   len(pl.missing),
		Skipped:  len(pl.order) - len(pl.missing) - len(pl.upstream) + len(pl.upstreamOutside),
		NarBytes: pl.narBytes,
		Missing:  pl.missing,

		Upstream:         len(pl.upstream),
		UpstreamNarBytes: pl.upstreamBytes,
	}
	c := a.counters
	c.Total.Store(int64(len(pl.missing)))
	c.TotalBytes.Store(int64(pl.narBytes))
	c.Done.Store(0)
	// A root manifest records the NAR of every path: those the cache had
	// are read from their narinfos while the others upload.
	type presentRead struct {
		had map[string]presentInfo
		err error
	}
	var readPresent chan presentRead
	if a.opts.Root != nil && !a.opts.DryRun {
		rctx, cancel := context.WithCancel(ctx)
		readPresent = make(chan presentRead, 1)
		go func() {
			had, err := a.readPresent(rctx, pl.order, pl.present)
			readPresent <- presentRead{had, err}
		}()
		// On an early return, stop the reads and wait for them to end.
		defer func() {
			cancel()
			if readPresent != nil {
				<-readPresent
			}
		}()
	}
	if !a.opts.DryRun && len(pl.missing) > 0 {
		fileBytes, err := a.upload(ctx)
		res.FileBytes = fileBytes
		res.UpstreamRecord = a.upstreamKey
		if err != nil {
			return res, err
		}
	}
	if readPresent != nil {
		r := <-readPresent
		readPresent = nil
		if err := r.err; err != nil {
			// Read before the lock was held: a gc may have deleted it since.
			if errors.Is(err, errVanished) && a.gate != nil {
				if err := a.gate(ctx); err != nil {
					return res, err
				}
				return res, errRestart
			}
			return res, err
		}
		a.had = r.had
		if err := a.enter(ctx, "recording root "+a.opts.Root.Name); err != nil {
			return res, err
		}
		key, err := a.recordRoot(ctx, a.opts.Root)
		if err != nil {
			return res, err
		}
		res.Root = key
	}
	return res, nil
}

// enter passes the lock gate, if any, before what.
func (a *attempt) enter(ctx context.Context, what string) error {
	if a.gate != nil {
		if err := a.gate(ctx); err != nil {
			return err
		}
	}
	return a.checkLock(ctx, what)
}

// checkLock makes sure, before what, that the shared lock is still held:
// a push whose lock was removed (`nixbucket unlock --all`) or went stale
// may be running beside a gc, which could have deleted a path this push
// found present; writing on would publish a narinfo whose closure is
// incomplete. What was written so far is consistent.
func (a *attempt) checkLock(ctx context.Context, what string) error {
	if a.lock == nil {
		return nil
	}
	if err := a.lock.Check(ctx); err != nil {
		return fmt.Errorf("push stopped before %s: %w; what was written is consistent, run the push again", what, err)
	}
	return nil
}
