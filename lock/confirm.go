package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// The confirmer's bounds: at most maxConfirming HEADs of the lock in
// flight, started at least Settle/minGapDiv apart (5 ms by default); it
// stops once no Check came for idleSettles × Settle.
const (
	maxConfirming = 16
	minGapDiv     = 40
	idleSettles   = 10
)

// confirmer is the state of the background confirmer (Lock.confirmLoop),
// guarded by Lock.mu: while a holder calls Check, it HEADs the lock
// object on a schedule, so that a confirmation started less than Settle/2
// ago is ready whenever a Check comes.
type confirmer struct {
	running   bool      // a loop is on
	released  bool      // Release ran: no loop starts again
	lastCheck time.Time // (time.Now) when Check was last called
	waiters   int       // Checks waiting for a result
	news      chan struct{}
	err       error     // the last HEAD's error other than not-found
	errAt     time.Time // local time (Options.Clock) that HEAD started
	srtt      time.Duration
	rttvar    time.Duration // HEADs' round trip, as TCP estimates it
	heads     int           // HEADs made
	waited    int           // Checks that had to wait for a result

	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{}  // HEADs in flight, across loops
	wg     sync.WaitGroup // loops and their HEADs
	done   chan struct{}  // closed when the current loop has stopped
}

// Prepare starts confirming the lock in the background, as Check does,
// without waiting: a holder about to write calls it, so that its first
// Check finds a confirmation ready. The confirmer stops again if no Check
// follows.
func (l *Lock) Prepare() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.touch()
}

// touch records a Check (or a Prepare) and starts the loop unless
// one is on. l.mu is held.
func (l *Lock) touch() {
	c := &l.conf
	c.lastCheck = time.Now()
	if c.running || c.released || l.lost != nil {
		return
	}
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(l.base)
		c.news = make(chan struct{})
		c.slots = make(chan struct{}, maxConfirming)
	}
	c.running = true
	c.done = make(chan struct{})
	c.wg.Add(1)
	go l.confirmLoop(c.done)
}

// stopConfirming stops the confirmer for good and waits for its HEADs.
func (l *Lock) stopConfirming() {
	l.mu.Lock()
	l.conf.released = true
	cancel := l.conf.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	l.conf.wg.Wait()
}

// confirmLoop starts HEADs of the lock object, each gap() after the last
// and at most maxConfirming at once, until the lock is lost or released
// or no Check came for idleSettles × Settle (and none waits).
func (l *Lock) confirmLoop(done chan struct{}) {
	c := &l.conf
	defer c.wg.Done()
	defer close(done)
	var last time.Time
	for {
		l.mu.Lock()
		idle := c.waiters == 0 && time.Since(c.lastCheck) > idleSettles*l.opts.Settle
		if idle || l.lost != nil || c.released {
			c.running = false
			l.mu.Unlock()
			return
		}
		gap := l.gap()
		l.mu.Unlock()
		if wait := time.Until(last.Add(gap)); wait > 0 {
			if sleep(c.ctx, wait) != nil {
				continue // released: the next round stops
			}
		}
		select {
		case c.slots <- struct{}{}:
		case <-c.ctx.Done():
			continue
		}
		last = time.Now()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { <-c.slots }()
			l.confirm(c.ctx)
		}()
	}
}

// gap is the pause between the starts of two HEADs: a HEAD is a
// confirmation from its start until Settle/2 later, usable once it has
// come back, one round trip after its start; so HEADs started less than
// Settle/2 minus a round trip apart leave no time without a usable
// confirmation. The round trip is estimated high (TCP's smoothed RTT plus
// twice its deviation) and a quarter of the slack kept back; the gap is
// at least Settle/minGapDiv, and a round trip over maxConfirming, so that
// at most maxConfirming are in flight. l.mu is held.
func (l *Lock) gap() time.Duration {
	half := l.opts.Settle / 2
	floor := l.opts.Settle / minGapDiv
	if l.conf.heads == 0 || l.conf.srtt == 0 {
		return floor
	}
	rtt := l.conf.srtt + 2*l.conf.rttvar
	return max((half-rtt)*3/4, floor, rtt/maxConfirming)
}

// confirm HEADs the lock object once and records what it found: a
// confirmation from the HEAD's start, the loss of the lock, or an error.
func (l *Lock) confirm(ctx context.Context) {
	l.mu.Lock()
	key := l.info.Key
	l.conf.heads++
	l.mu.Unlock()
	start, t0 := l.opts.Clock(), time.Now()
	_, err := l.b.Stat(ctx, key)
	rtt := time.Since(t0)
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &l.conf
	switch {
	case err == nil:
		if start.After(l.confirmed) {
			l.confirmed = start
		}
		if c.srtt == 0 {
			c.srtt, c.rttvar = rtt, rtt/2
		} else {
			c.rttvar = (3*c.rttvar + (c.srtt - rtt).Abs()) / 4
			c.srtt = (7*c.srtt + rtt) / 8
		}
	case errors.Is(err, s3cache.ErrNotFound):
		// A refresh deletes the old key once the new one is ours: only
		// the current key's absence is a loss.
		if key == l.info.Key && l.lost == nil {
			l.lost = fmt.Errorf("lock %s was removed (nixbucket unlock?): %w", key, ErrLost)
		}
	case ctx.Err() != nil:
		return // released
	default:
		if !start.Before(c.errAt) {
			c.err, c.errAt = fmt.Errorf("checking lock %s: %w", key, err), start
		}
	}
	close(c.news)
	c.news = make(chan struct{})
}
