package lock

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// Lock is a held lock; Release it when done.
type Lock struct {
	b      s3cache.Bucket
	holder string          // the random id of this holder, the start of every id it writes
	base   context.Context // Acquire's context without its cancellation, for cleanup
	opts   Options
	clock  *Clock

	stop chan struct{}
	done chan struct{}

	checkMu sync.Mutex // one refresh at a time

	mu        sync.Mutex
	info      Info      // its Key and ID change at each refresh
	leftover  []string  // our old keys whose deletion failed, deleted later
	written   time.Time // local time the last successful write started
	confirmed time.Time // local time the last confirmation (write or HEAD) started
	err       error     // last refresh error
	lost      error     // set once the lock is known lost
	conf      confirmer // the background confirmer (confirm.go)

	waited bool // Acquire met a conflicting lock before it got this one
}

// Waited reports whether Acquire met a conflicting lock (and so waited or
// backed out) before it got this one: whoever held it may have changed the
// bucket since the caller last looked.
func (l *Lock) Waited() bool { return l.waited }

// Owns reports whether key is one of this lock's objects, whatever its
// refreshes (it names the holder): a process that lists the bucket while
// it holds the lock (erase) must pass over them.
func (l *Lock) Owns(key string) bool {
	kind, id, ok := parseKey(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	return ok && (kind == l.info.Kind || kind == Waiting) && strings.HasPrefix(id, l.holder+"-")
}

// Key is the lock object's key now; it changes at each refresh.
func (l *Lock) Key() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info.Key
}

// Now is the server's time now, from the clock read when the lock was
// acquired (see Clock).
func (l *Lock) Now() time.Time { return l.clock.Now() }

// Release stops refreshing and confirming, and deletes the lock object.
func (l *Lock) Release() error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop = nil
	}
	l.stopConfirming()
	return l.remove()
}

// cleanupTimeout bounds the deletions made after the caller's context
// ended.
const cleanupTimeout = time.Minute

// remove deletes the lock object (and old ones left over), even when the
// caller's ctx is done.
func (l *Lock) remove() error {
	ctx, cancel := context.WithTimeout(l.base, cleanupTimeout)
	defer cancel()
	l.mu.Lock()
	keys := append(l.leftover, l.info.Key)
	l.leftover = nil
	l.mu.Unlock()
	if err := l.b.Delete(ctx, keys...); err != nil {
		return fmt.Errorf("removing lock %s: %w", keys[len(keys)-1], err)
	}
	return nil
}
