package push

import (
	"context"
	"errors"
	"sync"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// errRestart stops an attempt whose lock came too late (enterLock).
var errRestart = errors.New("the cache changed while the push waited for its lock")

// pendingLock is a shared lock being acquired in the background.
type pendingLock struct {
	done     chan struct{}
	listedCh chan struct{} // closed once Acquire has listed the locks
	cancel   context.CancelFunc
	l        *lock.Lock
	err      error
}

func startLock(ctx context.Context, b s3cache.Bucket, opts lock.Options) *pendingLock {
	ctx, cancel := context.WithCancel(ctx)
	pl := &pendingLock{done: make(chan struct{}), listedCh: make(chan struct{}), cancel: cancel}
	opts.Listed = func() { close(pl.listedCh) }
	go func() {
		defer close(pl.done)
		pl.l, pl.err = lock.Acquire(ctx, b, lock.Shared, opts)
	}()
	return pl
}

// listed waits until Acquire has first listed the locks: a NAR uploaded
// from then on cannot be deleted by a gc unless the lock had to wait for
// it (lock.Lock.Waited), and a gc listed before would have been seen.
func (pl *pendingLock) listed(ctx context.Context) error {
	select {
	case <-pl.listedCh:
		return nil
	case <-pl.done:
		if pl.err != nil {
			return pl.err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait returns the lock once acquired.
func (pl *pendingLock) wait(ctx context.Context) (*lock.Lock, error) {
	select {
	case <-pl.done:
		return pl.l, pl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release stops an acquisition still running and releases the lock if
// it was acquired.
func (pl *pendingLock) release() {
	pl.cancel()
	<-pl.done
	if pl.l != nil {
		pl.l.Release()
	}
}

// awaitLock makes the attempt upload its NARs once pending has listed the
// locks, and write its first narinfo (or root) only once pending is
// acquired and enterLock has passed.
func (a *attempt) awaitLock(pending *pendingLock) {
	var once sync.Once
	var err error
	a.gate = func(ctx context.Context) error {
		once.Do(func() { err = a.enterLock(ctx, pending) })
		return err
	}
	a.beforeNARs = pending.listed
}

// enterLock waits for the shared lock and checks, under it, that what the
// plan found still holds: the lock came without waiting for another (so
// no gc ran while the NARs uploaded unprotected: one would have been
// seen, as a lock or a waiting mark), every path then in the cache still
// is, and so are the references outside the graph. Otherwise it returns
// errRestart: the push starts again under the lock.
func (a *attempt) enterLock(ctx context.Context, pending *pendingLock) error {
	l, err := pending.wait(ctx)
	if err != nil {
		return err
	}
	a.lock = l
	l.Prepare() // the first narinfo's Check finds a confirmation ready
	if l.Waited() {
		return errRestart
	}
	// The plan's listing is from before the lock: look again.
	present, err := findPresent(ctx, a.b, a.plan.order, a.metaJobs, a.log, nil)
	if err != nil {
		return err
	}
	for h := range a.plan.present {
		if !present[h] {
			return errRestart
		}
	}
	_, err = a.checkOutside(ctx, a.plan.outside, nil)
	return err
}
