package lock

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLost is returned (wrapped) by Lock.Check when the lock object is gone
// (removed by `nixbucket unlock`) or could not be refreshed in time.
var ErrLost = errors.New("lock lost")

// Check returns an error wrapping ErrLost unless the lock object is still
// in the bucket and was written less than StaleAfter/2 ago, so that no
// other process may yet take it for stale. Call it before each destructive
// or dependent step. It returns nil only once a confirmation exists that
// started less than Settle/2 before the call: a write of the object, or a
// HEAD that found it, counted from the time the request started (see the
// package doc: a competitor that finds the lock gone waits Settle before
// it acts). The HEADs are made in the background (a confirmer, started by
// Check and Prepare, stopped by Release or when no Check came for a
// while), on a schedule that keeps such a confirmation ready: Check then
// returns at once, with no request of its own; otherwise it waits for the
// confirmer's next results. A HEAD that fails (other than not-found) and
// started in that window is Check's error. Once lost, a lock stays lost.
func (l *Lock) Check(ctx context.Context) error {
	entered := l.opts.Clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	waiting := false
	defer func() {
		if waiting {
			l.conf.waiters--
		}
	}()
	for {
		if l.lost != nil {
			return l.lost
		}
		if age := l.opts.Clock().Sub(l.written); age > l.opts.StaleAfter/2 {
			return l.lostLocked(fmt.Errorf("lock %s last refreshed %v ago (%v): %w", l.info.Key, age.Round(time.Second), l.err, ErrLost))
		}
		if l.conf.released {
			return fmt.Errorf("lock %s was released: %w", l.info.Key, ErrLost)
		}
		l.touch()
		if entered.Sub(l.confirmed) < l.opts.Settle/2 {
			return nil
		}
		if l.conf.err != nil && entered.Sub(l.conf.errAt) < l.opts.Settle/2 {
			return l.conf.err
		}
		if !waiting {
			waiting = true
			l.conf.waiters++
			l.conf.waited++
		}
		news := l.conf.news
		l.mu.Unlock()
		select {
		case <-news:
			l.mu.Lock()
		case <-ctx.Done():
			l.mu.Lock()
			return ctx.Err()
		}
	}
}
