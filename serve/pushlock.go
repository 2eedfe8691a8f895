package serve

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// DefaultLockIdle is how long a server that accepts pushes keeps the
// shared cache lock after its last write ended.
const DefaultLockIdle = time.Minute

// pushLock holds the shared cache lock (package lock) while writes are in
// flight: the first write takes it, and it is released once no write has
// been in flight for idle, so that gc can run while nobody pushes. Writes
// that come while it is being acquired wait for that one acquisition.
type pushLock struct {
	b    s3cache.Bucket
	opts lock.Options
	idle time.Duration
	log  *slog.Logger

	mu        sync.Mutex
	l         *lock.Lock
	acquiring chan struct{} // closed when the acquisition under way ends; nil if none
	err       error         // that acquisition's error
	active    int           // writes holding the lock
	timer     *time.Timer   // releases the lock once idle
	closed    bool
}

func newPushLock(b s3cache.Bucket, opts lock.Options, idle time.Duration, log *slog.Logger) *pushLock {
	if idle <= 0 {
		idle = DefaultLockIdle
	}
	return &pushLock{b: b, opts: opts, idle: idle, log: log}
}

// errServerClosing refuses writes that come while the server stops.
var errServerClosing = errors.New("the server is shutting down")

// hold returns the lock, held until done is called: a write runs between
// the two. It takes the lock if nobody holds it.
func (p *pushLock) hold(ctx context.Context) (l *lock.Lock, done func(), err error) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, nil, errServerClosing
		}
		if p.l != nil {
			p.active++
			if p.timer != nil {
				p.timer.Stop()
				p.timer = nil
			}
			l := p.l
			p.mu.Unlock()
			return l, sync.OnceFunc(p.done), nil
		}
		if p.acquiring == nil {
			p.acquiring = make(chan struct{})
			go p.acquire()
		}
		ch := p.acquiring
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		p.mu.Lock()
		if p.l == nil && p.err != nil {
			err := p.err
			p.mu.Unlock()
			return nil, nil, err
		}
	}
}

// acquire takes the lock in the background, so that a client that goes
// away does not abandon it for the others.
func (p *pushLock) acquire() {
	l, err := lock.Acquire(context.Background(), p.b, lock.Shared, p.opts)
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.acquiring)
	p.acquiring = nil
	p.err = err
	if err != nil {
		p.log.Warn("taking the shared cache lock for a push", "err", err)
		return
	}
	if p.closed {
		l.Release()
		return
	}
	p.log.Info("took the shared cache lock for pushes", "key", l.Key())
	p.l = l
	if p.active == 0 {
		p.timer = time.AfterFunc(p.idle, p.releaseIdle)
	}
}

// done ends a write; the last one starts the idle clock.
func (p *pushLock) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active--
	if p.active == 0 && p.l != nil && !p.closed {
		p.timer = time.AfterFunc(p.idle, p.releaseIdle)
	}
}

// releaseIdle releases the lock if no write came since the idle clock
// started.
func (p *pushLock) releaseIdle() {
	p.mu.Lock()
	l := p.l
	if l == nil || p.active > 0 || p.timer == nil {
		p.mu.Unlock()
		return
	}
	p.l, p.timer = nil, nil
	p.mu.Unlock()
	p.release(l)
}

// lost drops a lock that failed its Check, once its writes end, so that
// the next write takes a new one.
func (p *pushLock) lost(l *lock.Lock) {
	p.mu.Lock()
	if p.l != l {
		p.mu.Unlock()
		return
	}
	p.l = nil
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	p.release(l)
}

func (p *pushLock) release(l *lock.Lock) {
	if err := l.Release(); err != nil {
		p.log.Warn("releasing the shared cache lock", "err", err)
		return
	}
	p.log.Info("released the shared cache lock: no push in flight")
}

// close releases the lock (call it once the writes have ended) and
// refuses new writes.
func (p *pushLock) close() {
	p.mu.Lock()
	p.closed = true
	l := p.l
	p.l = nil
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	if l != nil {
		p.release(l)
	}
}
