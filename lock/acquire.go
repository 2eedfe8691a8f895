package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// Defaults of Options.
const (
	DefaultSettle     = 200 * time.Millisecond
	DefaultRefresh    = 5 * time.Minute
	DefaultStaleAfter = 30 * time.Minute
	// WaitingStaleAfter is the age after which a waiting object is stale:
	// its writer rewrites it every WaitingStaleAfter/4 while it waits.
	WaitingStaleAfter = time.Minute
)

// ErrLocked is returned (wrapped) by Acquire when a conflicting lock is
// still held after Options.Wait.
var ErrLocked = errors.New("cache is locked")

// Options tune Acquire.
type Options struct {
	// Command names the holder for people reading the lock ("push", "gc").
	Command string
	// Wait is how long Acquire waits for conflicting locks to go; 0 fails
	// at once.
	Wait time.Duration
	// Settle is the pause between writing the lock and re-checking;
	// default DefaultSettle. Check reuses confirmations younger than
	// Settle/2, which is safe when every process sharing the bucket uses
	// the same Settle (the CLI always uses the default).
	Settle time.Duration
	// Refresh is the interval between rewrites of a held lock; default
	// DefaultRefresh.
	Refresh time.Duration
	// StaleAfter is the age (since its last write) after which a lock is
	// stale; default DefaultStaleAfter.
	StaleAfter time.Duration
	// Logger receives waiting and refresh messages; nil discards them.
	Logger *slog.Logger
	// Clock is the local clock; nil means time.Now. Only its passing is
	// used (times come from the server's clock); tests inject a skewed one.
	Clock func() time.Time
	// Listed, if set, is called once, when Acquire has first listed the
	// locks: whatever runs from then on is seen by a competitor that takes
	// a conflicting lock later, or makes Acquire wait (Waited).
	Listed func()
}

func (o *Options) defaults() {
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// Acquire takes a lock of kind (Shared or Exclusive) in b, waiting up to
// opts.Wait for conflicting live locks to go, and keeps it fresh until
// Release. A conflicting lock still there after the wait is an error
// wrapping ErrLocked that names its holder.
func Acquire(ctx context.Context, b s3cache.Bucket, kind string, opts Options) (*Lock, error) {
	if kind != Shared && kind != Exclusive {
		return nil, fmt.Errorf("acquiring lock: unknown kind %q", kind)
	}
	opts.defaults()
	clock, err := NewClock(ctx, b, opts.Clock)
	if err != nil {
		return nil, fmt.Errorf("acquiring %s lock: %w", kind, err)
	}
	host, _ := os.Hostname()
	l := &Lock{b: b, base: context.WithoutCancel(ctx), opts: opts, clock: clock, info: Info{
		Kind: kind, Host: host, PID: os.Getpid(), Command: opts.Command,
		Created: clock.Now().Truncate(time.Second), Space: processSpace(), PIDStart: selfStart(),
	}}
	l.holder = randomID()
	l.info = l.info.renamed(l.holder)

	j := &judge{b: b, clock: clock, staleAfter: opts.StaleAfter, space: l.info.Space, host: host, dead: map[string]bool{}}
	deadline := time.Now().Add(opts.Wait)
	waitLogged := false
	var waiting *waitMark
	defer func() { waiting.remove() }()
	for attempt := 0; ; attempt++ {
		blocker, err := l.conflict(ctx, j, false)
		if err != nil {
			return nil, err
		}
		if attempt == 0 && opts.Listed != nil {
			opts.Listed()
		}
		if blocker == nil {
			start, err := l.write(ctx, l.info)
			if err != nil {
				l.remove() // the server may have stored it
				return nil, err
			}
			l.mu.Lock()
			l.written, l.confirmed = start, start
			l.mu.Unlock()
			if err := sleep(ctx, opts.Settle); err != nil {
				l.remove()
				return nil, err
			}
			blocker, err = l.conflict(ctx, j, true)
			if err != nil {
				l.remove()
				return nil, err
			}
			if blocker == nil {
				l.waited = attempt > 0
				l.start()
				opts.Logger.Debug("lock acquired", "key", l.info.Key)
				return l, nil
			}
			// Both of us wrote: back out, so that at least one proceeds later.
			l.remove()
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("acquiring %s lock: %s holds it; retry later, wait longer, or remove a lock left by a dead process with `nixbucket unlock`: %w",
				kind, Describe(ctx, b, *blocker), ErrLocked)
		}
		if !waitLogged {
			opts.Logger.Info("waiting for the cache lock", "held", Describe(ctx, b, *blocker))
			waitLogged = true
		}
		if kind == Exclusive && blocker.Kind == Shared {
			if waiting == nil {
				waiting = l.newWaitMark()
			}
			if err := waiting.keep(ctx); err != nil {
				return nil, err
			}
		}
		pause := min(opts.Settle*time.Duration(1+attempt), 5*time.Second)
		pause += time.Duration(rand.Int64N(int64(opts.Settle) + 1))
		if err := sleep(ctx, min(pause, max(time.Until(deadline), 0)+time.Millisecond)); err != nil {
			return nil, err
		}
	}
}

// conflict lists the locks and returns a live one that conflicts with l
// (written: once l's object is written), or nil.
func (l *Lock) conflict(ctx context.Context, j *judge, written bool) (*Info, error) {
	locks, err := List(ctx, l.b)
	if err != nil {
		return nil, err
	}
	for _, o := range locks {
		if o.Key == l.Key() || !conflicts(l.info.Kind, o.Kind, written) || j.stale(ctx, o) {
			continue
		}
		return &o, nil
	}
	return nil, nil
}

// write writes the lock object of info and returns the local time the
// write started; it does not change l.
func (l *Lock) write(ctx context.Context, info Info) (time.Time, error) {
	start := l.opts.Clock()
	body, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return start, err
	}
	body = append(body, '\n')
	err = l.b.Put(ctx, info.Key, strings.NewReader(string(body)), int64(len(body)), s3cache.PutOptions{ContentType: "application/json"})
	if err != nil {
		return start, fmt.Errorf("writing lock %s: %w", info.Key, err)
	}
	return start, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
