package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/lock"
)

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:      "gc",
		Usage:     "delete what no kept root reaches, in two phases (condemn, then delete after --grace)",
		UsageText: "nixbucket gc --cache URL [--keep-last N] [--keep-within DURATION] [--grace DURATION] [--wait DURATION] [--dry-run] [--json]",
		Description: "Keeps, per root name, the newest --keep-last manifests and those within --keep-within (all of them " +
			"if neither is given, and always those of pinned roots), every narinfo younger than --grace, and the closures " +
			"of all these. Anything else is condemned; a later run deletes it once it has been condemned for --grace and " +
			"not rewritten. Any unreadable manifest or narinfo makes gc delete nothing. Durations: 90m, 36h, 14d, 2w.",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.IntFlag{Name: "keep-last", Usage: "keep the newest `N` manifests of each root"},
			&cli.StringFlag{Name: "keep-within", Usage: "keep the manifests younger than `DURATION`"},
			&cli.StringFlag{Name: "grace", Value: "24h", Usage: "protect objects younger than `DURATION`; delete what was condemned at least this long ago"},
			&cli.StringFlag{Name: "wait", Value: "0s", Usage: "wait up to `DURATION` for running pushes (the lock) instead of failing"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be deleted and why; change nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON on stdout"},
		},
		Action: gcAction,
	}
}

func gcAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("gc takes no arguments, got %q", c.Args().First())
	}
	if c.Int("keep-last") < 0 {
		return usageErrorf("--keep-last must not be negative, got %d", c.Int("keep-last"))
	}
	var within, grace, wait time.Duration
	for _, d := range []struct {
		flag string
		to   *time.Duration
	}{{"keep-within", &within}, {"grace", &grace}, {"wait", &wait}} {
		if v := c.String(d.flag); v != "" {
			var err error
			if *d.to, err = parseDuration(v); err != nil {
				return usageErrorf("--%s: %v", d.flag, err)
			}
		}
	}
	if grace == 0 {
		grace = -1 // explicit 0: no grace
	}
	b, err := cacheBucket(c)
	if err != nil {
		return err
	}
	rep, err := gc.Run(c.Context, b, gc.Options{
		KeepLast:   c.Int("keep-last"),
		KeepWithin: within,
		Grace:      grace,
		DryRun:     c.Bool("dry-run"),
		Lock:       &lock.Options{Command: "gc", Wait: wait, Logger: slog.Default()},
		Logger:     slog.Default(),
	})
	if err != nil {
		if errors.Is(err, gc.ErrFailClosed) || errors.Is(err, lock.ErrLocked) {
			return withCode(exitFailure, err)
		}
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		return json.NewEncoder(w).Encode(rep)
	}
	for _, a := range rep.Actions {
		verb := a.Op
		if rep.DryRun && a.Op != gc.OpCondemn {
			verb = "would " + a.Op
		}
		fmt.Fprintf(w, "%s %s (%s): %s\n", verb, a.Key, humanize.IBytes(uint64(a.Size)), a.Reason)
	}
	did := "deleted"
	if rep.DryRun {
		did = "would delete"
	}
	var also string
	if n := rep.Logs + rep.Listings + rep.Realisations; n > 0 {
		also = fmt.Sprintf(", of which %d build logs, %d listings, %d realisations", rep.Logs, rep.Listings, rep.Realisations)
	}
	_, err = fmt.Fprintf(w, "%s %d objects (%s%s); %d condemned; %d uploads aborted; kept %d of %d manifests, %d of %d narinfos live (%d young)\n",
		did, rep.Deleted, humanize.IBytes(uint64(rep.FreedBytes)), also, rep.Condemned, rep.Aborted, rep.Kept, rep.Manifests, rep.Live, rep.NarInfos, rep.Young)
	return err
}

// parseDuration is time.ParseDuration plus d (24h) and w (7d) units as a
// whole-number prefix: "14d", "2w", "1d12h".
func parseDuration(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		i := strings.Index(rest, u.suffix)
		if i <= 0 {
			continue
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q (use e.g. 90m, 36h, 14d, 2w)", s)
		}
		total += time.Duration(n) * u.unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("invalid duration %q (use e.g. 90m, 36h, 14d, 2w)", s)
		}
		total += d
	}
	return total, nil
}

func unlockCommand() *cli.Command {
	return &cli.Command{
		Name:      "unlock",
		Usage:     "remove stale cache locks (left by killed pushes or gcs); --all removes every lock",
		UsageText: "nixbucket unlock --cache URL [--all]",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.BoolFlag{Name: "all", Usage: "remove live locks too (only when you know no push or gc runs)"},
		},
		Action: func(c *cli.Context) error {
			b, err := cacheBucket(c)
			if err != nil {
				return err
			}
			gone, err := lock.RemoveStale(c.Context, b, lock.DefaultStaleAfter, c.Bool("all"))
			if err != nil {
				return err
			}
			for _, l := range gone {
				fmt.Fprintf(c.App.Writer, "removed %s (last written %s)\n", l.Key, l.LastModified.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(c.App.Writer, "removed %d locks\n", len(gone))
			return nil
		},
	}
}
