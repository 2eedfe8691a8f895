package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/queue"
	"github.com/nixbucket/nixbucket/s3cache"
)

// batch pushes the claimed entries and settles them in the queue: done
// once pushed, failed when their path is gone or after the last attempt,
// else pending again after a backoff; requeued as they were when a stop
// cancelled the push. Only a failing queue is an error.
func (w *watcher) batch(ctx context.Context, entries []queue.Entry) error {
	start := time.Now()
	attempt := 1
	for _, e := range entries {
		attempt = max(attempt, e.Attempts+1)
	}
	// The queue is written whatever happens to the push, even when
	// stopping: what is claimed is always settled or requeued.
	qctx := context.WithoutCancel(ctx)
	bctx, cancel := context.WithCancel(qctx)
	defer cancel()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-stopped:
			return
		case <-ctx.Done():
		}
		w.log.Info("stopping: finishing the batch in flight", "paths", len(entries), "grace", w.o.StopGrace)
		t := time.NewTimer(w.o.StopGrace)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			cancel()
		case <-w.o.Abort:
			w.log.Info("stopping now: cancelling the batch in flight")
			cancel()
		}
	}()

	res, valid, err := w.push(bctx, qctx, entries)
	dur := time.Since(start)
	w.o.Metrics.batchDone(res, err, dur)
	switch {
	case err == nil:
		w.size = w.o.BatchSize
		if len(valid) == 0 {
			return nil
		}
		if err := w.o.Queue.Done(qctx, ids(valid)); err != nil {
			return err
		}
		w.sum.Batches++
		w.sum.Done += len(valid)
		args := []any{"paths", len(valid), "closure", res.Paths, "pushed", res.Pushed, "present", res.Skipped,
			"nar_bytes", res.NarBytes, "file_bytes", res.FileBytes, "duration", dur.Round(time.Millisecond), "attempt", attempt}
		if w.o.Push.Logs {
			args = append(args, "logs", res.Logs, "log_bytes", res.LogBytes)
			if res.LogsPresent > 0 {
				args = append(args, "logs_present", res.LogsPresent)
			}
			if res.LogsFailed > 0 {
				args = append(args, "logs_failed", res.LogsFailed)
			}
		}
		if res.Root != "" {
			args = append(args, "root", res.Root)
		}
		w.log.Info("batch pushed", args...)
		return nil
	case bctx.Err() != nil && ctx.Err() != nil:
		n, qerr := w.o.Queue.Requeue(qctx)
		if qerr != nil {
			return qerr
		}
		w.log.Warn("stopping: cancelled the batch in flight; its entries are pending again", "entries", n, "duration", dur.Round(time.Millisecond))
		return nil
	}
	// The batch failed: the next one takes half as many entries, the
	// oldest first, so that one bad path does not fail a whole batch.
	w.size = max(1, len(valid)/2)
	return w.settleFailed(qctx, valid, err, dur)
}

// settleFailed settles the entries of a failed batch: each one out of
// attempts is failed, the others are retried after a backoff that grows
// with their own attempts.
func (w *watcher) settleFailed(ctx context.Context, valid []queue.Entry, cause error, dur time.Duration) error {
	stored := w.stored(cause)
	var giveUp []queue.Entry
	retry := map[int][]queue.Entry{} // by attempt
	for _, e := range valid {
		if n := e.Attempts + 1; n >= w.o.MaxAttempts {
			giveUp = append(giveUp, e)
		} else {
			retry[n] = append(retry[n], e)
		}
	}
	if len(giveUp) > 0 {
		if err := w.o.Queue.Fail(ctx, ids(giveUp), stored); err != nil {
			return err
		}
		w.fail(len(giveUp), cause)
		w.log.Error("batch failed; giving up: its entries are failed (see nixbucket queue; queue retry requeues them)",
			"paths", len(giveUp), "attempt", w.o.MaxAttempts, "duration", dur.Round(time.Millisecond), "err", cause)
	}
	last := 0
	for n, es := range retry {
		if err := w.o.Queue.Retry(ctx, ids(es), stored, backoff(n, w.o.RetryBase, w.o.RetryMax)); err != nil {
			return err
		}
		last = max(last, n)
	}
	if last > 0 {
		w.log.Warn("batch failed; will retry", "paths", len(valid)-len(giveUp), "attempt", last,
			"retry_in", backoff(last, w.o.RetryBase, w.o.RetryMax), "duration", dur.Round(time.Millisecond), "err", cause)
	}
	return nil
}

// push pushes the closure of the entries' paths that the local store
// still has, after failing the others (with qctx), and returns the
// entries it pushed or tried to.
func (w *watcher) push(ctx, qctx context.Context, entries []queue.Entry) (*push.Result, []queue.Entry, error) {
	paths := make([]string, len(entries))
	for i, e := range entries {
		paths[i] = e.Path
	}
	s, err := w.o.OpenStore(ctx)
	if err != nil {
		return nil, entries, fmt.Errorf("opening the local store: %w", err)
	}
	defer s.Close()
	validPaths, err := s.QueryValidPaths(ctx, paths)
	if err != nil {
		return nil, entries, fmt.Errorf("querying the local store: %w", err)
	}
	isValid := make(map[string]bool, len(validPaths))
	for _, p := range validPaths {
		isValid[p] = true
	}
	var valid, gone []queue.Entry
	for _, e := range entries {
		if isValid[e.Path] {
			valid = append(valid, e)
		} else {
			gone = append(gone, e)
		}
	}
	if len(gone) > 0 {
		if err := w.settleGone(ctx, qctx, gone); err != nil {
			return nil, entries, err // all retried, none pushed
		}
	}
	if len(valid) == 0 {
		return nil, nil, nil
	}
	g, err := closure.Compute(ctx, s, validPaths, closure.Options{})
	if err != nil {
		return nil, valid, err
	}
	opts := w.o.Push
	opts.Counters = new(push.Counters)
	opts.Listing = nil
	opts.Root = nil
	if w.o.Root != "" {
		opts.Root = &push.RootOptions{Name: w.o.Root, TopLevel: validPaths}
	}
	res, err := push.Push(ctx, w.o.Bucket, g, opts)
	return res, valid, err
}

// stored is err as the queue keeps it: redacted (Options.Redact).
func (w *watcher) stored(err error) error {
	if w.o.Redact == nil || err == nil {
		return err
	}
	return errors.New(w.o.Redact(err.Error()))
}

// settleGone settles the entries whose path the local store no longer
// has: done if the cache has the path (pushed by another way before it
// was garbage-collected), else failed, since nothing can push it now.
func (w *watcher) settleGone(ctx, qctx context.Context, gone []queue.Entry) error {
	var present, lost []queue.Entry
	for _, e := range gone {
		_, err := w.o.Bucket.Stat(ctx, layout.NarInfoKeyOf(e.Path))
		switch {
		case err == nil:
			present = append(present, e)
		case errors.Is(err, s3cache.ErrNotFound):
			lost = append(lost, e)
		default:
			return fmt.Errorf("checking the cache for %s, gone from the local store: %w", e.Path, err)
		}
	}
	if len(present) > 0 {
		if err := w.o.Queue.Done(qctx, ids(present)); err != nil {
			return err
		}
		w.sum.Done += len(present)
		w.log.Info("paths gone from the local store are in the cache: done", "paths", len(present), "first", present[0].Path)
	}
	for _, e := range lost {
		cause := goneError{e.Path}
		if err := w.o.Queue.Fail(qctx, []int64{e.ID}, cause); err != nil {
			return err
		}
		w.fail(1, cause)
	}
	if len(lost) > 0 {
		w.log.Warn("paths no longer valid in the local store, nor in the cache, are failed", "paths", len(lost), "first", lost[0].Path)
	}
	return nil
}

// fail counts n entries given up on, with their error.
func (w *watcher) fail(n int, err error) {
	w.sum.Failed += n
	w.sum.LastError = err
	w.o.Metrics.failed(n)
}

func ids(es []queue.Entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}
