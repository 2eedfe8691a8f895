package watch

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/queue"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/store"
)

// Defaults of Options.
const (
	DefaultBatchWait    = 2 * time.Second
	DefaultBatchSize    = 256
	DefaultPollInterval = 500 * time.Millisecond
	DefaultRetryBase    = 5 * time.Second
	DefaultRetryMax     = 5 * time.Minute
	DefaultMaxAttempts  = 8
	DefaultStopGrace    = 45 * time.Second
)

// Options configure Run.
type Options struct {
	// Queue is the queue drained; Run takes its drainer lock.
	Queue *queue.Queue
	// Bucket is the cache pushed to.
	Bucket s3cache.Bucket
	// Cache names Bucket in the starting log line (its store URL, which
	// holds no secret); empty leaves it out.
	Cache string
	// OpenStore opens the local store the paths are read from, once per
	// batch: a store kept open for days can go stale (a database
	// connection blind to Nix's later commits, a daemon restarted).
	OpenStore func(context.Context) (store.Store, error)
	// Push is the template of every batch's push: keys, compression,
	// jobs, lock. Its Counters, Root and Listing are set per batch.
	Push push.Options
	// Root, if set, names the root each batch records a manifest of.
	Root string
	// Once drains what is pending (waiting for the retries it makes) and
	// returns, instead of watching for more.
	Once bool
	// NewPaths, if set, is the local store's database file (normally
	// store.DBPath()), polled for paths registered since Run began, which
	// are queued (watch-store).
	NewPaths string
	// BatchWait is how long to wait, once an entry is due, for more to
	// gather into its batch; 0 means DefaultBatchWait, a negative value
	// none. Once waits none.
	BatchWait time.Duration
	// BatchSize bounds the entries of a batch; default DefaultBatchSize.
	BatchSize int
	// PollInterval is how often the queue (and NewPaths) is polled;
	// default DefaultPollInterval.
	PollInterval time.Duration
	// RetryBase is the delay after a batch's first failure, doubled after
	// each next one up to RetryMax; defaults DefaultRetryBase and
	// DefaultRetryMax.
	RetryBase, RetryMax time.Duration
	// MaxAttempts is how many times a batch is tried before its entries
	// are failed; default DefaultMaxAttempts.
	MaxAttempts int
	// StopGrace is how long the batch in flight may go on once ctx is
	// cancelled, before it is cancelled too and its entries requeued;
	// default DefaultStopGrace.
	StopGrace time.Duration
	// Abort, if set, is closed to cut StopGrace short: the batch in
	// flight is cancelled at once and its entries requeued (a second
	// SIGTERM).
	Abort <-chan struct{}
	// Metrics, if set, counts what Run does.
	Metrics *Metrics
	// Redact, if set, cleans an error's text of secrets before it is
	// stored in the queue file, which outlives this process and is shown
	// by `nixbucket queue`, a process that does not know its secrets.
	Redact func(string) string
	// Logger receives the batch lines, retries and failures; nil
	// discards them.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.BatchWait == 0 {
		o.BatchWait = DefaultBatchWait
	}
	def(&o.PollInterval, DefaultPollInterval)
	def(&o.RetryBase, DefaultRetryBase)
	def(&o.RetryMax, DefaultRetryMax)
	def(&o.StopGrace, DefaultStopGrace)
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Once {
		o.BatchWait = 0
	}
}

// Summary is what a Run did.
type Summary struct {
	// Batches counts the batches pushed.
	Batches int
	// Done counts the entries pushed and marked done.
	Done int
	// Failed counts the entries given up on (failed).
	Failed int
	// LastError is the error of the last entries failed, if any.
	LastError error
}

// Run drains the queue until ctx is cancelled, or, with Once, until no
// entry is pending. It returns an error only when the queue itself fails
// (another process drains it: queue.ErrDrainerRunning; an entry cannot
// be settled; with Once, any queue error): a long-running Run logs a
// failed poll or claim and tries again.
func Run(ctx context.Context, o Options) (Summary, error) {
	o.defaults()
	w := &watcher{o: o, log: o.Logger, size: o.BatchSize}
	unlock, err := o.Queue.LockDrainer()
	if err != nil {
		return w.sum, err
	}
	defer unlock()
	n, err := o.Queue.Requeue(ctx)
	if err != nil {
		return w.sum, err
	}
	if n > 0 {
		w.log.Info("requeued the entries a previous watch left in flight", "entries", n)
	}
	if o.NewPaths != "" {
		sw, err := newStoreWatcher(ctx, o.NewPaths, o.Queue, o.Metrics, w.log)
		if err != nil {
			return w.sum, err
		}
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			sw.run(ctx, o.PollInterval)
		}()
	}
	if !o.Once {
		args := []any{"queue", o.Queue.Path(), "watch_store", o.NewPaths != ""}
		if o.Cache != "" {
			args = append([]any{"cache", o.Cache}, args...)
		}
		w.log.Info("watching the queue", args...)
	}
	for {
		due, err := w.waitDue(ctx)
		if err != nil || !due {
			return w.sum, err
		}
		if !sleep(ctx, o.BatchWait) {
			return w.sum, nil
		}
		entries, err := o.Queue.Claim(ctx, w.size)
		switch {
		case err != nil && ctx.Err() != nil:
			return w.sum, nil
		case err != nil && o.Once:
			return w.sum, err
		case err != nil:
			w.log.Warn("claiming from the queue failed; trying again", "err", err)
			if !sleep(ctx, o.PollInterval) {
				return w.sum, nil
			}
			continue
		}
		if len(entries) == 0 {
			continue
		}
		if err := w.batch(ctx, entries); err != nil {
			return w.sum, err
		}
	}
}

// watcher is one Run's state.
type watcher struct {
	o   Options
	log *slog.Logger
	sum Summary
	// size is the next claim's size: BatchSize, halved after each
	// failed batch (down to 1) so that a path that keeps failing ends up
	// alone, and the others of its batch are pushed; back to BatchSize
	// after a success.
	size int
}

// waitDue waits until an entry is due, and says whether one is: false
// when ctx is cancelled, or, with Once, when none is pending.
func (w *watcher) waitDue(ctx context.Context) (bool, error) {
	for {
		if ctx.Err() != nil {
			return false, nil
		}
		due, ok, err := w.o.Queue.NextDue(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return false, nil
		case err != nil && w.o.Once:
			return false, err
		case err != nil:
			// A queue busy for long (busy_timeout) need not end a
			// long-running watch: say so, and poll again.
			w.log.Warn("reading the queue failed; trying again", "err", err)
		case !ok && w.o.Once:
			return false, nil
		case ok && !due.After(time.Now()):
			return true, nil
		}
		wait := w.o.PollInterval
		if ok {
			wait = min(wait, time.Until(due))
		}
		if !sleep(ctx, wait) {
			return false, nil
		}
	}
}

// sleep waits for d, and says false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// goneError is the error of a queued path the local store no longer has
// (garbage-collected since it was queued) and the cache lacks: it cannot
// be pushed, so it is failed at once. It is store.ErrNotValid.
type goneError struct{ path string }

func (e goneError) Error() string {
	return e.path + " is no longer valid in the local store (garbage-collected since it was queued?)"
}

func (e goneError) Is(target error) bool { return target == store.ErrNotValid }
