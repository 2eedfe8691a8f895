package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// ErrLost is returned (wrapped) by Lock.Check when the lock object is gone
// (removed by `nixbucket unlock`) or could not be refreshed in time.
var ErrLost = errors.New("lock lost")

// Check returns an error wrapping ErrLost unless the lock object is still
// in the bucket and was written less than StaleAfter/2 ago, so that no
// other process may yet take it for stale. Call it before each destructive
// or dependent step. A confirmation (a write, or a HEAD of the object)
// started less than Settle/2 before the call is reused: a competitor that finds the
// lock gone waits Settle before it acts. Once lost, a lock stays lost.
func (l *Lock) Check(ctx context.Context) error {
	// A confirmation started after entered-Settle/2 serves this call too,
	// even one that another caller made while this one waited for checkMu:
	// parallel callers share one HEAD instead of queueing for their own.
	entered := l.opts.Clock()
	l.checkMu.Lock()
	defer l.checkMu.Unlock()
	l.mu.Lock()
	lost, written, confirmed, rerr, key := l.lost, l.written, l.confirmed, l.err, l.info.Key
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	now := l.opts.Clock()
	if age := now.Sub(written); age > l.opts.StaleAfter/2 {
		return l.setLost(fmt.Errorf("lock %s last refreshed %v ago (%v): %w", key, age.Round(time.Second), rerr, ErrLost))
	}
	if entered.Sub(confirmed) < l.opts.Settle/2 {
		return nil
	}
	if _, err := l.b.Stat(ctx, key); err != nil {
		if errors.Is(err, s3cache.ErrNotFound) {
			return l.setLost(fmt.Errorf("lock %s was removed (nixbucket unlock?): %w", key, ErrLost))
		}
		return fmt.Errorf("checking lock %s: %w", key, err)
	}
	l.mu.Lock()
	if now.After(l.confirmed) {
		l.confirmed = now
	}
	l.mu.Unlock()
	return nil
}
