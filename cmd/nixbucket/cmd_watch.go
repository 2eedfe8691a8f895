package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/metrics"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/queue"
	"github.com/nixbucket/nixbucket/stats"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/watch"
)

// watchCommand is `nixbucket watch`, the long-running pusher that drains
// the queue `nixbucket hook` fills (package watch).
func watchCommand() *cli.Command {
	return &cli.Command{
		Name:  "watch",
		Usage: "push the queued store paths as they come (the queue nixbucket hook fills); --once drains it and exits",
		UsageText: "nixbucket watch --cache URL [--secret-key-file FILE...] [--queue FILE] [--root NAME] [--batch-wait DURATION]\n" +
			"    [--jobs N] [--compression xz|zstd|none] [--once | --watch-store] [--metrics-listen ADDR] [--logs] [--no-lock]\n" +
			"    [--lock-wait DURATION]",
		Description: "Pushes the queue's paths in batches, with their closures, as push does; an entry is done once its narinfo\n" +
			"is written. A failed batch is retried with backoff, then its entries are failed (nixbucket queue shows them);\n" +
			"a path gone from the local store fails at once. One line is logged per batch. SIGTERM or SIGINT stops\n" +
			"claiming, lets the batch in flight finish for up to 45s (else, or at a second signal, requeues it)\n" +
			"and exits 0.\n\n" +
			"Example (the last step of a CI job):\n" +
			"   nixbucket watch --once --cache 's3://nix?endpoint=https://garage.example.org&region=garage' --secret-key-file cache.key",
		Flags: append(append([]cli.Flag{
			cacheFlag(),
			queueFlag(),
			&cli.StringFlag{Name: "root", Usage: "record a root manifest roots/`NAME`/<time>-<id>.json of each batch's closure (keep them with gc --keep-within)"},
			&cli.DurationFlag{Name: "batch-wait", Value: watch.DefaultBatchWait, Usage: "once a path is queued, wait `DURATION` for more to push in one batch"},
			&cli.BoolFlag{Name: "once", Usage: "push what is queued (retrying failures), then exit: 0 if all was pushed, 1 if some failed"},
			&cli.BoolFlag{Name: "watch-store", Usage: "also queue the paths the local store registers from now on (no hook needed)"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "serve Prometheus metrics at http://`ADDR`/metrics (e.g. 127.0.0.1:9101)"},
			logsFlag(),
		}, uploadFlags()...), lockFlags()...),
		Action: watchAction,
	}
}

func watchAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("watch takes no arguments (got %q); queue paths with nixbucket hook, or use push", c.Args().First())
	}
	if c.Bool("once") && c.Bool("watch-store") {
		return usageErrorf("--watch-store watches for new paths and --once exits when the queue is drained: give one of them")
	}
	if c.Duration("batch-wait") < 0 {
		return usageErrorf("--batch-wait must not be negative, got %v", c.Duration("batch-wait"))
	}
	ps, err := newPushSetup(c)
	if err != nil {
		return err
	}
	if err := checkLogs(c, ps.url); err != nil {
		return err
	}
	// Signals cancel c.Context: watch then stops claiming, but the
	// metrics serve until it returns (wctx).
	ctx := c.Context
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	qpath, err := queuePath(c.String("queue"))
	if err != nil {
		return usageErrorf("%w", err)
	}
	q, err := queue.Open(ctx, qpath)
	if err != nil {
		return err
	}
	defer q.Close()
	// Refuse a second drainer before any network work; Run takes the
	// lock again for itself.
	unlock, err := q.LockDrainer()
	if err != nil {
		return err
	}
	unlock()
	newPaths := ""
	if c.Bool("watch-store") {
		// Fail now if the database cannot be read.
		newPaths = store.DBPath()
		if _, err := store.LastID(ctx, newPaths); err != nil {
			return withCode(exitNotFound, fmt.Errorf("--watch-store: %w", err))
		}
	}
	b, err := openBucket(ctx, ps.url)
	if err != nil {
		return err
	}
	if ps.info != nil {
		if _, err := ps.info.EnsureFrom(ctx, b, nil); err != nil {
			return err
		}
	}
	// Fail now if there is no store; each batch opens it again.
	s, err := openStore(ctx)
	if err != nil {
		return err
	}
	s.Close()
	if len(ps.keys) == 0 {
		slog.Warn("pushing unsigned narinfos: Nix will not substitute them with require-sigs; give --secret-key-file or NIXBUCKET_SECRET_KEY")
	}
	var m *watch.Metrics
	if addr := c.String("metrics-listen"); addr != "" {
		reg := metrics.NewRegistry()
		// Labelled with the cache as serve's are.
		m = watch.NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"cache": stats.CacheLabel(ps.url)}, reg), q)
		la, err := metrics.Listen(wctx, addr, reg)
		if err != nil {
			return usageErrorf("--metrics-listen: %w", err)
		}
		fmt.Fprintf(c.App.Writer, "metrics on http://%s/metrics\n", la)
	}
	var lk *lock.Options
	if !c.Bool("no-lock") {
		lk = &lock.Options{Command: "watch", Wait: c.Duration("lock-wait"), Logger: slog.Default()}
	}
	batchWait := c.Duration("batch-wait")
	if batchWait == 0 {
		batchWait = -1 // none, not watch's default
	}
	limitMemory()
	sum, err := watch.Run(ctx, watch.Options{
		Abort:  secondSignal(ctx, wctx),
		Queue:  q,
		Bucket: b,
		Cache:  redactString(c, ps.url.String()),
		OpenStore: func(ctx context.Context) (store.Store, error) {
			return store.Open(ctx, store.WithLogger(slog.Default()))
		},
		Push: push.Options{
			Compression:      ps.algo,
			CompressionLevel: ps.level,
			Keys:             ps.keys,
			Jobs:             c.Int("jobs"),
			PartSize:         ps.url.PartSize,
			Logger:           slog.Default(),
			Lock:             lk,
			Logs:             c.Bool("logs"),
			LogCompression:   ps.url.LogCompression,
		},
		Root:      ps.root,
		Once:      c.Bool("once"),
		NewPaths:  newPaths,
		BatchWait: batchWait,
		Metrics:   m,
		Redact:    func(s string) string { return redactString(c, s) },
		Logger:    slog.Default(),
	})
	if err != nil {
		return err
	}
	if c.Bool("once") && ctx.Err() == nil {
		if sum.Failed > 0 {
			return withCode(exitFailure, fmt.Errorf("%d queued %s pushed, %d failed (nixbucket queue lists them): %w",
				sum.Done, plural(int64(sum.Done), "path", "paths"), sum.Failed, sum.LastError))
		}
		fmt.Fprintf(c.App.Writer, "pushed %d queued %s in %d %s\n", sum.Done, plural(int64(sum.Done), "path", "paths"),
			sum.Batches, plural(int64(sum.Batches), "batch", "batches"))
		return nil
	}
	slog.Info("watch stopped", "paths", sum.Done, "batches", sum.Batches, "failed", sum.Failed)
	return nil
}

// secondSignal returns a channel closed by a SIGINT or SIGTERM that comes
// after ctx was cancelled (by the first one), until done ends: the user
// insists, so watch stops without waiting for the batch in flight.
func secondSignal(ctx, done context.Context) <-chan struct{} {
	abort := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done.Done():
			return
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		select {
		case <-sig:
			close(abort)
		case <-done.Done():
		}
	}()
	return abort
}
