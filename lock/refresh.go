package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// start runs the refresher.
func (l *Lock) start() {
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(l.opts.Refresh)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(l.base, l.opts.StaleAfter/4)
			err := l.refresh(ctx)
			cancel()
			if err != nil {
				l.opts.Logger.Warn("refreshing the cache lock", "key", l.Key(), "err", err)
				if errors.Is(err, ErrLost) {
					return
				}
			}
		}
	}()
}

// refresh rewrites the lock the restic way: it writes the lock under a new
// key, checks that the old object is still there, and deletes the old one.
// If the old one was removed, it deletes the new one: a removed lock is
// lost for good (writing it back would undo an `unlock`, and hide the loss
// from Check while a gc may already be running). A competitor that lists
// the locks after the old object was removed sees the new one, which was
// written before the old one was found.
func (l *Lock) refresh(ctx context.Context) error {
	l.checkMu.Lock()
	defer l.checkMu.Unlock()
	l.mu.Lock()
	old, lost, leftover := l.info, l.lost, l.leftover
	l.leftover = nil
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	if len(leftover) > 0 {
		if err := l.b.Delete(ctx, leftover...); err != nil {
			l.mu.Lock()
			l.leftover = append(l.leftover, leftover...)
			l.mu.Unlock()
		}
	}
	next := old.renamed(l.holder)
	start, err := l.write(ctx, next)
	if err != nil {
		// The server may store it yet, after the drop: delete it again
		// later.
		l.mu.Lock()
		l.leftover = append(l.leftover, next.Key)
		l.mu.Unlock()
	} else {
		_, err = l.b.Stat(ctx, old.Key)
	}
	if err != nil {
		l.drop(next.Key)
		if errors.Is(err, s3cache.ErrNotFound) {
			return l.setLost(fmt.Errorf("lock %s was removed (nixbucket unlock?): %w", old.Key, ErrLost))
		}
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		return err
	}
	l.mu.Lock()
	l.info, l.err = next, nil
	l.written = start
	if start.After(l.confirmed) {
		l.confirmed = start
	}
	l.mu.Unlock()
	if err := l.b.Delete(ctx, old.Key); err != nil {
		l.mu.Lock()
		l.leftover = append(l.leftover, old.Key)
		l.mu.Unlock()
		return fmt.Errorf("removing the old lock %s: %w", old.Key, err)
	}
	return nil
}

// drop deletes an object of ours that must not stay, even when ctx is
// done; it logs a failure (the object goes stale in time).
func (l *Lock) drop(key string) {
	ctx, cancel := context.WithTimeout(l.base, cleanupTimeout)
	defer cancel()
	if err := l.b.Delete(ctx, key); err != nil {
		l.opts.Logger.Warn("removing a lock object", "key", key, "err", err)
	}
}

func (l *Lock) setLost(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lostLocked(err)
}

// lostLocked is setLost with l.mu held; it wakes the Checks waiting for
// the confirmer.
func (l *Lock) lostLocked(err error) error {
	if l.lost == nil {
		l.lost = err
		if l.conf.news != nil {
			close(l.conf.news)
			l.conf.news = make(chan struct{})
		}
	}
	return l.lost
}
