// Package lock keeps garbage collection and pushes apart with lock objects
// in the bucket, restic's protocol (restic internal/restic/lock.go) without
// conditional PUT, which Garage may lack.
//
// A lock is an object locks/<kind>-<id>.json, kind "shared" (a push) or
// "exclusive" (a gc). Its body is JSON naming the host, pid and command,
// for people, and the process space (boot id and PID namespace) and the
// start time of the holder's process (pid_start), which tell the holder
// from a later process given the same PID. The protocol reads keys and
// LastModified, so a check costs one LIST. To acquire: list the locks; if a live one conflicts (an exclusive
// conflicts with any lock, a shared one with an exclusive), wait and
// retry; else write our lock, wait Settle, list again, and back out
// (delete ours, wait, retry) on any conflict. Two writers that both
// proceed would each have listed after both writes, and so have seen each
// other: at least one backs out.
//
// The holder refreshes its lock every Refresh the restic way: it writes
// the lock under a new key, then checks that the old object is still
// there, and only then deletes the old one. If the old one is gone (removed
// by `nixbucket unlock`), it deletes the new one: the lock is lost, and
// Check says so. A key is never written twice, so a removal is never
// undone, and the new object exists before the old one is confirmed: a
// competitor that lists after the removal of the old object sees the new
// one. Readers must not hold on to a lock's key: it changes at each
// refresh (Lock.Key is the current one), and a listing may show a holder
// twice, or (a listing that is not one snapshot) neither key.
//
// A lock is stale when its LastModified is older than StaleAfter by the
// server's clock (Clock: never the local one, which may be hours off), or
// when its holder ran on this host in our process space and that process
// is gone: no process has its PID, or the one that has it started at
// another time (restic's rule, for pushes killed on a CI machine). Stale
// locks are ignored by Acquire and removed by RemoveStale (`nixbucket
// unlock`).
//
// Shared locks do not wait for each other, so a steady stream of
// overlapping pushes could keep a gc waiting for ever. So an exclusive
// Acquire that has to wait for shared locks writes a waiting object
// locks/waiting-<id>.json, rewritten while it waits and removed when it
// stops waiting, and a shared Acquire does not write its lock while a live
// one is there (writer preference). A push past that point is not held
// back; a waiting object left by a killed gc is stale after
// WaitingStaleAfter.
//
// A holder calls Check before each destructive or dependent step (gc
// before each delete batch, push before each narinfo it writes). Check is
// cheap: a competitor that finds our lock gone still waits Settle before
// it acts, so a confirmation less than Settle/2 old is reused, and at
// most one HEAD is made per Settle/2.
package lock

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// Prefix is the key prefix of lock objects.
const Prefix = "locks/"

// Lock kinds.
const (
	// Shared is taken by pushes; many may be held at once.
	Shared = "shared"
	// Exclusive is taken by gc; it excludes every other lock.
	Exclusive = "exclusive"
	// Waiting marks an exclusive Acquire that waits for shared locks to
	// go; new shared locks wait for it in turn.
	Waiting = "waiting"
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

// ErrLost is returned (wrapped) by Lock.Check when the lock object is gone
// (removed by `nixbucket unlock`) or could not be refreshed in time.
var ErrLost = errors.New("lock lost")

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

// Info describes a lock object.
type Info struct {
	// Kind is Shared, Exclusive or Waiting.
	Kind string `json:"kind"`
	// ID is the lock's id: its holder's random id, a dash, and a random
	// suffix that changes at each refresh.
	ID string `json:"id"`
	// Host and PID name the holding process.
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Command is what holds the lock ("push", "gc").
	Command string `json:"command,omitempty"`
	// Created is when the lock was first written (the server's clock).
	Created time.Time `json:"created"`
	// Space is the holder's process space (kernel boot id and PID
	// namespace): a holder in ours whose PID is gone, or now names a
	// process started at another time, is dead.
	Space string `json:"space,omitempty"`
	// PIDStart is when the holding process started, in clock ticks after
	// boot (field 22 of /proc/PID/stat); 0 when unknown. With Space it
	// tells the holder from a later process given the same PID.
	PIDStart uint64 `json:"pid_start,omitempty"`
	// Key is the object's key.
	Key string `json:"-"`
	// LastModified is when the object was last written (the server's clock).
	LastModified time.Time `json:"-"`
}

// Stale reports whether the lock was last written more than staleAfter
// before now.
func (i Info) Stale(now time.Time, staleAfter time.Duration) bool {
	return now.Sub(i.LastModified) > staleAfter
}

// conflicts reports whether a lock of kind may not be taken beside other.
// Before writing its object, a shared lock also yields to a waiting
// exclusive one (writer preference); once written, only held locks count.
func conflicts(kind, other string, written bool) bool {
	switch {
	case other == Waiting:
		return kind == Shared && !written
	case kind == Waiting:
		return false
	}
	return kind == Exclusive || other == Exclusive
}

// parseKey returns the kind and id of a lock key, ok false for other keys.
func parseKey(key string) (kind, id string, ok bool) {
	name, found := strings.CutPrefix(key, Prefix)
	if !found {
		return "", "", false
	}
	name, found = strings.CutSuffix(name, ".json")
	if !found {
		return "", "", false
	}
	kind, id, found = strings.Cut(name, "-")
	if !found || id == "" || (kind != Shared && kind != Exclusive && kind != Waiting) {
		return "", "", false
	}
	return kind, id, true
}

// List returns the lock objects in b, from one LIST, without reading them
// (Host, PID, Command and Created are empty).
func List(ctx context.Context, b s3cache.Bucket) ([]Info, error) {
	var out []Info
	err := b.List(ctx, Prefix, func(o s3cache.ObjectInfo) error {
		if kind, id, ok := parseKey(o.Key); ok {
			out = append(out, Info{Kind: kind, ID: id, Key: o.Key, LastModified: o.LastModified})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing locks: %w", err)
	}
	return out, nil
}

// Read fills in i's body fields (host, pid, command, created) with one GET.
func Read(ctx context.Context, b s3cache.Bucket, i Info) (Info, error) {
	data, err := s3cache.ReadSmall(ctx, b, i.Key, 1<<16)
	if err != nil {
		return i, fmt.Errorf("reading lock %s: %w", i.Key, err)
	}
	var body Info
	if err := json.Unmarshal(data, &body); err != nil {
		return i, fmt.Errorf("parsing lock %s: %w", i.Key, err)
	}
	i.Host, i.PID, i.Command, i.Created, i.Space, i.PIDStart = body.Host, body.PID, body.Command, body.Created, body.Space, body.PIDStart
	return i, nil
}

// Describe is a one-line description of a lock for messages, reading its
// body when it can.
func Describe(ctx context.Context, b s3cache.Bucket, i Info) string {
	full, err := Read(ctx, b, i)
	if err != nil {
		return fmt.Sprintf("%s (last written %s)", i.Key, i.LastModified.UTC().Format(time.RFC3339))
	}
	cmd := full.Command
	if cmd == "" {
		cmd = full.Kind
	}
	return fmt.Sprintf("%s lock %s by %s on %s pid %d since %s (last written %s)", full.Kind, i.Key, cmd, full.Host, full.PID,
		full.Created.UTC().Format(time.RFC3339), i.LastModified.UTC().Format(time.RFC3339))
}

// Lock is a held lock; Release it when done.
type Lock struct {
	b      s3cache.Bucket
	holder string          // the random id of this holder, the start of every id it writes
	base   context.Context // Acquire's context without its cancellation, for cleanup
	opts   Options
	clock  *Clock

	stop chan struct{}
	done chan struct{}

	checkMu sync.Mutex // one Check's HEAD, or one refresh, at a time

	mu        sync.Mutex
	info      Info      // its Key and ID change at each refresh
	leftover  []string  // our old keys whose deletion failed, deleted later
	written   time.Time // local time the last successful write started
	confirmed time.Time // local time the last confirmation (write or HEAD) started
	err       error     // last refresh error
	lost      error     // set once the lock is known lost

	waited bool // Acquire met a conflicting lock before it got this one
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

// judge decides which locks are stale: by age on the server's clock, or
// because their holder ran in our process space and is gone.
type judge struct {
	b          s3cache.Bucket
	clock      *Clock
	staleAfter time.Duration
	space      string
	host       string
	dead       map[string]bool // lock keys whose holder is gone
}

// stale reports whether lock o may be ignored. Reading a body it cannot
// read, it assumes the holder alive; a lock that vanished is stale.
func (j *judge) stale(ctx context.Context, o Info) bool {
	after := j.staleAfter
	if o.Kind == Waiting {
		after = min(after, WaitingStaleAfter)
	}
	if o.Stale(j.clock.Now(), after) {
		return true
	}
	if j.space == "" {
		return false
	}
	if j.dead[o.Key] {
		return true
	}
	full, err := Read(ctx, j.b, o)
	dead := errors.Is(err, s3cache.ErrNotFound) || err == nil && j.holderDead(full)
	if dead && err == nil {
		j.dead[o.Key] = true // a dead holder stays dead; a live one may die
	}
	return dead
}

// holderDead reports whether the holder of lock i, which ran on this host
// in our process space, is gone: its PID names no process, or one started
// at another time (the PID was reused). A lock without a start time
// (written by an older nixbucket) is judged by its PID alone, and never
// dead when it names this process.
func (j *judge) holderDead(i Info) bool {
	if i.Space != j.space || i.Host != j.host {
		return false
	}
	if i.PIDStart == 0 {
		return i.PID != os.Getpid() && processGone(i.PID)
	}
	return holderGone(i.PID, i.PIDStart)
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

// renamed returns i under a new id and key, of holder.
func (i Info) renamed(holder string) Info {
	i.ID = holder + "-" + randomID()
	i.Key = Prefix + i.Kind + "-" + i.ID + ".json"
	return i
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
	l.written, l.confirmed = start, start
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
	if l.lost == nil {
		l.lost = err
	}
	return l.lost
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

// waitMark is the waiting object of an exclusive Acquire that waits.
type waitMark struct {
	l       *Lock
	key     string
	body    []byte
	written time.Time // local time of the last write; zero before the first
}

func (l *Lock) newWaitMark() *waitMark {
	info := l.info // before start: nothing changes it
	info.Kind = Waiting
	body, _ := json.MarshalIndent(info, "", "  ") // as Acquire's write did
	return &waitMark{l: l, key: Prefix + Waiting + "-" + info.ID + ".json", body: append(body, '\n')}
}

// keep writes the waiting object when it was never written or is due for
// a rewrite.
func (w *waitMark) keep(ctx context.Context) error {
	now := w.l.opts.Clock()
	if !w.written.IsZero() && now.Sub(w.written) < WaitingStaleAfter/4 {
		return nil
	}
	err := w.l.b.Put(ctx, w.key, strings.NewReader(string(w.body)), int64(len(w.body)), s3cache.PutOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("writing %s: %w", w.key, err)
	}
	w.written = now
	return nil
}

// remove deletes the waiting object, if written, even when the caller's
// ctx is done.
func (w *waitMark) remove() {
	if w == nil || w.written.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(w.l.base, cleanupTimeout)
	defer cancel()
	if err := w.l.b.Delete(ctx, w.key); err != nil {
		w.l.opts.Logger.Warn("removing the waiting mark", "key", w.key, "err", err)
	}
}

// Release stops refreshing and deletes the lock object.
func (l *Lock) Release() error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop = nil
	}
	return l.remove()
}

// removeRounds bounds the listings of RemoveStale.
const removeRounds = 8

// RemoveStale deletes the locks that are stale (all of them when all is
// true) and returns what it removed: those older than staleAfter by the
// server's clock, and those whose holder ran in this process space and is
// gone.
//
// A holder refreshing its lock while it is removed may have written the
// lock's next key (see Lock.refresh) before the old one was deleted, and
// keep the lock under it; so RemoveStale lists again after deleting, and
// removes what is new, until a listing finds nothing new to remove. The
// next key, if the holder keeps the lock, was written before the old one
// was deleted, so the next listing has it. It lists at least twice: a
// listing that is not one snapshot (a directory read, as versitygw's) may
// miss both the old key, deleted while it ran, and the next one, written
// while it ran; the next listing has the next key.
func RemoveStale(ctx context.Context, b s3cache.Bucket, staleAfter time.Duration, all bool) ([]Info, error) {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	var j *judge
	seen := map[string]bool{}
	var gone []Info
	for round := range removeRounds {
		locks, err := List(ctx, b)
		if err != nil {
			return gone, err
		}
		if j == nil && !all && len(locks) > 0 {
			clock, err := NewClock(ctx, b, nil)
			if err != nil {
				return gone, err
			}
			host, _ := os.Hostname()
			j = &judge{b: b, clock: clock, staleAfter: staleAfter, space: processSpace(), host: host, dead: map[string]bool{}}
		}
		var keys []string
		for _, l := range locks {
			if seen[l.Key] {
				continue
			}
			seen[l.Key] = true
			if all || j.stale(ctx, l) {
				gone = append(gone, l)
				keys = append(keys, l.Key)
			}
		}
		if len(keys) == 0 {
			if round == 0 {
				continue
			}
			return gone, nil
		}
		if err := b.Delete(ctx, keys...); err != nil {
			return gone, fmt.Errorf("removing locks: %w", err)
		}
	}
	return gone, nil
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
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
