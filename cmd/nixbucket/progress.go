package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/redact"
)

// showProgress shows a push's progress on w (stderr) until the returned
// function is called with whether the push succeeded. On a terminal it
// draws a bar (carriage returns, no ANSI escapes). Otherwise it prints
// plain lines a log keeps readable: one as soon as the work is known, one
// every interval, and a last one when the push succeeds. quiet shows
// nothing (--json, --dry-run).
func showProgress(ctx context.Context, w io.Writer, c *push.Counters, quiet bool, interval time.Duration) func(ok bool) {
	if quiet {
		return func(bool) {}
	}
	f, isFile := redact.Unwrap(w).(*os.File)
	if isFile && term.IsTerminal(int(f.Fd())) {
		// The bar shows counts only, and redraws with '\r'.
		return showBar(ctx, f, c)
	}
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return showLines(ctx, w, c, interval)
}

// progressLine is one plain progress line: "pushed 2/4 paths, 120 KiB of
// 295 KiB". A path counts once its narinfo is written (the last step);
// the bytes are the NAR bytes read so far.
func progressLine(c *push.Counters) string {
	total := c.TotalBytes.Load()
	return fmt.Sprintf("pushed %d/%d paths, %s of %s", c.Done.Load(), c.Total.Load(),
		humanize.IBytes(uint64(min(c.NarBytes.Load(), total))), humanize.IBytes(uint64(total)))
}

// showLines prints progressLine at the start (once the work is known:
// "pushing 4 paths, 295 KiB of NAR"), every interval, and at the end of a
// successful push.
func showLines(ctx context.Context, w io.Writer, c *push.Counters, interval time.Duration) func(ok bool) {
	done := make(chan bool, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		started := false
		// Poll until the work is known, then tick at the interval.
		tick := time.NewTicker(min(interval, 150*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case ok := <-done:
				if ok && c.Total.Load() > 0 {
					fmt.Fprintln(w, progressLine(c))
				}
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			switch {
			case c.Total.Load() == 0:
			case !started:
				started = true
				n := c.Total.Load()
				fmt.Fprintf(w, "pushing %d %s, %s of NAR\n", n, plural(n, "path", "paths"), humanize.IBytes(uint64(c.TotalBytes.Load())))
				tick.Reset(interval)
			default:
				fmt.Fprintln(w, progressLine(c))
			}
		}
	}()
	return func(ok bool) {
		done <- ok
		<-stopped
	}
}

// showBar draws a progress bar on the terminal f.
func showBar(ctx context.Context, f *os.File, c *push.Counters) func(ok bool) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var bar *progressbar.ProgressBar
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if bar != nil {
					bar.Set64(c.NarBytes.Load())
					bar.Finish()
				}
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if c.Total.Load() == 0 {
				continue
			}
			if bar == nil {
				bar = progressbar.NewOptions64(c.TotalBytes.Load(),
					progressbar.OptionSetWriter(f),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetDescription("pushing"),
					progressbar.OptionShowCount(),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionClearOnFinish(),
				)
			}
			bar.Describe(fmt.Sprintf("pushing %d/%d paths", c.Done.Load(), c.Total.Load()))
			bar.Set64(c.NarBytes.Load())
		}
	}()
	return func(bool) {
		close(done)
		<-stopped
	}
}

// plural is one or many according to n.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
