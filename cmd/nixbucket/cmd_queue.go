package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/queue"
)

func queueCommand() *cli.Command {
	return &cli.Command{
		Name:  "queue",
		Usage: "show the queue of paths `nixbucket hook` added for `nixbucket watch` to push; retry failed ones",
		UsageText: `nixbucket queue [--queue FILE] [--json]
nixbucket queue retry [--queue FILE]

Shows how many entries are pending, in flight and failed, the failed and
in-flight entries (with their last error), when the oldest pending one was
added and when a push last succeeded. A queue file that does not exist is
an error (exit 3): only the hook and watch create one.`,
		Flags: []cli.Flag{queueFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON on stdout"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("unknown queue command %q (want: retry)", c.Args().First())
			}
			q, err := openExistingQueue(c.Context, c.String("queue"))
			if err != nil {
				return err
			}
			defer q.Close()
			r, err := readQueueReport(c.Context, q)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(r)
			}
			return r.print(c.App.Writer, time.Now())
		},
		Subcommands: []*cli.Command{{
			Name:      "retry",
			Usage:     "make the failed entries pending again, for `nixbucket watch` to push",
			UsageText: "nixbucket queue retry [--queue FILE]",
			Flags:     []cli.Flag{queueFlag()},
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return usageErrorf("queue retry takes no arguments")
				}
				q, err := openExistingQueue(c.Context, lineageQueueFile(c))
				if err != nil {
					return err
				}
				defer q.Close()
				n, err := q.RetryFailed(c.Context)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.App.Writer, "re-queued %d failed %s in %s\n", n, plural(int64(n), "entry", "entries"), q.Path())
				return err
			},
		}},
	}
}

// lineageQueueFile is the --queue given to `queue retry` or, failing that,
// to `queue` before it (nixbucket queue --queue FILE retry), else
// $NIXBUCKET_QUEUE: both levels have the flag, and each defaults to the
// environment's value.
func lineageQueueFile(c *cli.Context) string {
	env := os.Getenv(queue.EnvVar)
	for _, cc := range c.Lineage() {
		if v := cc.String("queue"); v != "" && v != env {
			return v
		}
	}
	return env
}

// openExistingQueue opens the queue file (--queue, else the default), which
// must exist: looking at a queue never creates one.
func openExistingQueue(ctx context.Context, file string) (*queue.Queue, error) {
	path, err := queuePath(file)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, withCode(exitNotFound, fmt.Errorf("no queue at %s (nixbucket hook and watch create it; see --queue)", path))
	} else if err != nil {
		return nil, fmt.Errorf("queue %s: %w", path, err)
	}
	return queue.Open(ctx, path)
}

// queueReport is what `nixbucket queue` shows; its JSON names are the
// interface scripts use.
type queueReport struct {
	Queue         string       `json:"queue"`
	Pending       int          `json:"pending"`
	InFlight      int          `json:"inFlight"`
	Failed        int          `json:"failed"`
	Pushed        int64        `json:"pushed"`
	LastSuccess   *time.Time   `json:"lastSuccess"`
	OldestPending *time.Time   `json:"oldestPending"`
	LastError     *string      `json:"lastError"`
	InFlightList  []queueEntry `json:"inFlightEntries"`
	FailedList    []queueEntry `json:"failedEntries"`
}

// queueEntry is one in-flight or failed entry of a queueReport.
type queueEntry struct {
	Path      string    `json:"path"`
	Drv       string    `json:"drv,omitempty"`
	Added     time.Time `json:"added"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError,omitempty"`
}

func readQueueReport(ctx context.Context, q *queue.Queue) (*queueReport, error) {
	st, err := q.Status(ctx)
	if err != nil {
		return nil, err
	}
	r := &queueReport{
		Queue: q.Path(), Pending: st.Pending, InFlight: st.InFlight, Failed: st.Failed, Pushed: st.Pushed,
		LastSuccess: timeOrNil(st.LastSuccess), OldestPending: timeOrNil(st.OldestPending),
		InFlightList: []queueEntry{}, FailedList: []queueEntry{},
	}
	if st.LastError != "" {
		r.LastError = &st.LastError
	}
	for _, l := range []struct {
		state queue.State
		to    *[]queueEntry
	}{{queue.InFlight, &r.InFlightList}, {queue.Failed, &r.FailedList}} {
		es, err := q.Entries(ctx, l.state, 0)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			*l.to = append(*l.to, queueEntry{Path: e.Path, Drv: e.Drv, Added: e.Added.UTC(), Attempts: e.Attempts, LastError: e.LastError})
		}
	}
	return r, nil
}

// timeOrNil is t in UTC, nil for the zero time (JSON null).
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Second)
	return &t
}

func (r *queueReport) print(w io.Writer, now time.Time) error {
	ago := func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), now.Sub(*t).Round(time.Second))
	}
	fmt.Fprintf(w, "queue      %s\n", r.Queue)
	fmt.Fprintf(w, "pending    %d", r.Pending)
	if r.OldestPending != nil {
		fmt.Fprintf(w, ", oldest added %s", ago(r.OldestPending))
	}
	fmt.Fprintf(w, "\nin flight  %d\nfailed     %d\n", r.InFlight, r.Failed)
	fmt.Fprintf(w, "last push  %s, %d paths pushed in all\n", ago(r.LastSuccess), r.Pushed)
	if r.LastError != nil {
		fmt.Fprintf(w, "last error %s\n", *r.LastError)
	}
	for _, l := range []struct {
		name string
		es   []queueEntry
	}{{"in flight", r.InFlightList}, {"failed (nixbucket queue retry re-queues them)", r.FailedList}} {
		if len(l.es) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s:\n", l.name)
		for _, e := range l.es {
			fmt.Fprintf(w, "  %s", e.Path)
			if e.LastError != "" {
				fmt.Fprintf(w, "  (%d %s: %s)", e.Attempts, plural(int64(e.Attempts), "attempt", "attempts"), e.LastError)
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}
