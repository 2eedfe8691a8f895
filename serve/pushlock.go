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

// DefaultLockMaxHold is how long one shared cache lock serves new writes
// of a server that accepts pushes: after it, new writes take a new lock,
// which yields to a gc waiting for the cache, and the old one is released
// once its writes end.
const DefaultLockMaxHold = 10 * time.Minute

// pushLock holds the shared cache lock (package lock) while writes are in
// flight: the first write takes it, and it is released once no write has
// been in flight for idle, so that gc can run while nobody pushes. Writes
// that come while it is being acquired wait for that one acquisition. A
// lock older than maxHold takes no new write: the next write takes a new
// one (lock.Acquire makes a shared lock wait for a gc that waits), so that
// pushes that never pause do not keep gc out for ever.
type pushLock struct {
	b       s3cache.Bucket
	opts    lock.Options
	idle    time.Duration
	maxHold time.Duration
	log     *slog.Logger

	mu        sync.Mutex
	cur       *heldLock     // the lock new writes join; nil if none
	acquiring chan struct{} // closed when the acquisition under way ends; nil if none
	err       error         // that acquisition's error
	timer     *time.Timer   // releases cur once idle
	closed    bool
}

// heldLock is one shared lock and the writes holding it.
type heldLock struct {
	l      *lock.Lock
	since  time.Time
	active int
}

func newPushLock(b s3cache.Bucket, opts lock.Options, idle, maxHold time.Duration, log *slog.Logger) *pushLock {
	if idle <= 0 {
		idle = DefaultLockIdle
	}
	if maxHold <= 0 {
		maxHold = DefaultLockMaxHold
	}
	return &pushLock{b: b, opts: opts, idle: idle, maxHold: maxHold, log: log}
}

// errServerClosing refuses writes that come while the server stops.
var errServerClosing = errors.New("the server is shutting down")

// hold returns the lock, held until done is called: a write runs between
// the two. It takes the lock if nobody holds it, or if the one held is
// older than maxHold.
func (p *pushLock) hold(ctx context.Context) (l *lock.Lock, done func(), err error) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, nil, errServerClosing
		}
		if h := p.cur; h != nil && time.Since(h.since) >= p.maxHold {
			p.retire(h)
		}
		if h := p.cur; h != nil {
			h.active++
			p.stopTimer()
			p.mu.Unlock()
			return h.l, sync.OnceFunc(func() { p.done(h) }), nil
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
		if p.cur == nil && p.err != nil {
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
		go p.release(l)
		return
	}
	p.log.Info("took the shared cache lock for pushes", "key", l.Key())
	p.cur = &heldLock{l: l, since: time.Now()}
	p.timer = time.AfterFunc(p.idle, p.releaseIdle)
}

// retire makes h take no new write, and releases it now if it has none
// (else its last write does). Called with mu held.
func (p *pushLock) retire(h *heldLock) {
	p.cur = nil
	p.stopTimer()
	if h.active == 0 {
		go p.release(h.l)
	}
}

// stopTimer stops the idle clock. Called with mu held.
func (p *pushLock) stopTimer() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

// done ends a write that held h: the last one starts the idle clock, or
// releases h if it was retired.
func (p *pushLock) done(h *heldLock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h.active--
	if h.active > 0 {
		return
	}
	switch {
	case h != p.cur:
		go p.release(h.l) // retired, lost or closed meanwhile
	case !p.closed:
		p.stopTimer()
		p.timer = time.AfterFunc(p.idle, p.releaseIdle)
	}
}

// releaseIdle releases the current lock if no write came since the idle
// clock started.
func (p *pushLock) releaseIdle() {
	p.mu.Lock()
	h := p.cur
	if h == nil || h.active > 0 || p.timer == nil {
		p.mu.Unlock()
		return
	}
	p.cur, p.timer = nil, nil
	p.mu.Unlock()
	p.release(h.l)
}

// lost makes a lock that failed its Check take no new write, so that the
// next write takes a new one; it is released once its writes end.
func (p *pushLock) lost(l *lock.Lock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.cur; h != nil && h.l == l {
		p.retire(h)
	}
}

func (p *pushLock) release(l *lock.Lock) {
	if err := l.Release(); err != nil {
		p.log.Warn("releasing the shared cache lock", "err", err)
		return
	}
	p.log.Info("released a shared cache lock of pushes", "key", l.Key())
}

// close releases the lock (call it once the writes have ended) and
// refuses new writes.
func (p *pushLock) close() {
	p.mu.Lock()
	p.closed = true
	h := p.cur
	p.cur = nil
	p.stopTimer()
	idle := h != nil && h.active == 0 // else its last write releases it
	p.mu.Unlock()
	if idle {
		p.release(h.l)
	}
}
