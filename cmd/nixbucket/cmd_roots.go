package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

func rootsCommand() *cli.Command {
	return &cli.Command{
		Name:  "roots",
		Usage: "list, show, pin, unpin and remove the roots gc keeps (roots/NAME/*.json, written by push --root)",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "list the roots: manifests, newest, pinned",
				UsageText: "nixbucket roots list --cache URL [--json]",
				Flags:     []cli.Flag{cacheFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON on stdout"}},
				Action: func(c *cli.Context) error {
					b, err := cacheBucket(c)
					if err != nil {
						return err
					}
					x, err := roots.List(c.Context, b)
					if err != nil {
						return err
					}
					w := c.App.Writer
					if c.Bool("json") {
						if x.Roots == nil {
							x.Roots = []*roots.Root{}
						}
						return json.NewEncoder(w).Encode(x.Roots)
					}
					if len(x.Roots) == 0 {
						fmt.Fprintln(w, "no roots (push with --root NAME to record one)")
					}
					for _, r := range x.Roots {
						pin, newest := "", "-"
						if r.Pinned {
							pin = "  pinned"
						}
						if len(r.Manifests) > 0 {
							newest = r.Manifests[0].Time.Format(time.RFC3339)
						}
						fmt.Fprintf(w, "%s  %d manifests, newest %s%s\n", r.Name, len(r.Manifests), newest, pin)
					}
					return nil
				},
			},
			{
				Name:      "show",
				Usage:     "show a root's manifests (with --json, the newest manifest itself)",
				UsageText: "nixbucket roots show NAME --cache URL [--json]",
				Flags:     []cli.Flag{cacheFlag(), &cli.BoolFlag{Name: "json", Usage: "print the newest manifest as JSON on stdout"}},
				Action: onRoot(func(c *cli.Context, b s3cache.Bucket, name string) error {
					x, err := roots.List(c.Context, b)
					if err != nil {
						return err
					}
					r := x.Get(name)
					if r == nil || len(r.Manifests) == 0 {
						return withCode(exitNotFound, fmt.Errorf("root %s: %w (see nixbucket roots list)", name, roots.ErrNoRoot))
					}
					w := c.App.Writer
					newest, err := roots.Read(c.Context, b, r.Manifests[0].Key)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return json.NewEncoder(w).Encode(newest)
					}
					pin := "not pinned"
					if r.Pinned {
						pin = "pinned"
					}
					fmt.Fprintf(w, "root %s (%s), %d manifests:\n", name, pin, len(r.Manifests))
					for _, m := range r.Manifests {
						fmt.Fprintf(w, "  %s  %s\n", m.Time.Format(time.RFC3339), m.Key)
					}
					fmt.Fprintf(w, "newest: %d paths, %s of NAR; top level:\n", len(newest.Paths), humanize.IBytes(newest.NarSize()))
					for _, p := range newest.TopLevel {
						fmt.Fprintf(w, "  %s\n", p)
					}
					return nil
				}),
			},
			{
				Name:      "pin",
				Usage:     "pin a root: gc keeps all its manifests, whatever the retention",
				UsageText: "nixbucket roots pin NAME --cache URL [--lock-wait D] [--no-lock]",
				Flags:     append([]cli.Flag{cacheFlag()}, rootsLockFlags()...),
				Action: onLockedRoot(func(c *cli.Context, b s3cache.Bucket, name string) error {
					if err := roots.Pin(c.Context, b, name, time.Now()); err != nil {
						return rootsErr(err)
					}
					fmt.Fprintf(c.App.Writer, "pinned root %s\n", name)
					return nil
				}),
			},
			{
				Name:      "unpin",
				Usage:     "unpin a root: its manifests expire by the retention again",
				UsageText: "nixbucket roots unpin NAME --cache URL [--lock-wait D] [--no-lock]",
				Flags:     append([]cli.Flag{cacheFlag()}, rootsLockFlags()...),
				Action: onLockedRoot(func(c *cli.Context, b s3cache.Bucket, name string) error {
					if err := roots.Unpin(c.Context, b, name); err != nil {
						return rootsErr(err)
					}
					fmt.Fprintf(c.App.Writer, "unpinned root %s\n", name)
					return nil
				}),
			},
			{
				Name:      "rm",
				Usage:     "remove a root (all its manifests; a pinned root must be unpinned first); gc then collects what only it kept",
				UsageText: "nixbucket roots rm NAME --cache URL [--lock-wait D] [--no-lock]",
				Flags:     append([]cli.Flag{cacheFlag()}, rootsLockFlags()...),
				Action: onLockedRoot(func(c *cli.Context, b s3cache.Bucket, name string) error {
					n, err := roots.Remove(c.Context, b, name)
					if err != nil {
						return rootsErr(err)
					}
					fmt.Fprintf(c.App.Writer, "removed root %s (%d objects)\n", name, n)
					return nil
				}),
			},
		},
	}
}

// flagsAfterArgs parses the flags that follow the positional arguments
// (`roots show NAME --cache URL`), which urfave/cli leaves as arguments,
// sets them on c, and returns the positional arguments.
func flagsAfterArgs(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	if len(args) <= 1 {
		return args, nil
	}
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return nil, err
		}
	}
	var pos []string
	for len(args) > 0 {
		if err := set.Parse(args); err != nil {
			return nil, withCode(exitUsage, err)
		}
		rest := set.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	var err error
	set.Visit(func(f *flag.Flag) {
		if err == nil {
			err = c.Set(f.Name, f.Value.String())
		}
	})
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return pos, nil
}

// rootsErr maps a roots error to its exit code.
func rootsErr(err error) error {
	if errors.Is(err, roots.ErrNoRoot) {
		return withCode(exitNotFound, err)
	}
	if errors.Is(err, roots.ErrInvalidName) || errors.Is(err, roots.ErrPinned) {
		return withCode(exitUsage, err)
	}
	return err
}

// cacheBucket opens the bucket --cache names.
func cacheBucket(c *cli.Context) (s3cache.Bucket, error) {
	u, err := cacheURL(c)
	if err != nil {
		return nil, err
	}
	return openBucket(c.Context, u)
}

// rootNameArg is the one root NAME argument of a roots subcommand.
func rootNameArg(c *cli.Context) (string, error) {
	pos, err := flagsAfterArgs(c)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usageErrorf("%s needs one root NAME", c.Command.Name)
	}
	name := pos[0]
	if err := roots.CheckName(name); err != nil {
		return "", withCode(exitUsage, err)
	}
	return name, nil
}

// onRoot makes the action of a command on one root: it takes the root name
// argument and opens the cache, then runs fn.
func onRoot(fn func(c *cli.Context, b s3cache.Bucket, name string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		name, err := rootNameArg(c)
		if err != nil {
			return err
		}
		b, err := cacheBucket(c)
		if err != nil {
			return err
		}
		return fn(c, b, name)
	}
}

// rootsLockFlags are the lock flags of the roots commands that change a
// root.
func rootsLockFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "lock-wait", Value: 2 * lock.DefaultStaleAfter, Usage: "how long to wait for a running gc to finish"},
		&cli.BoolFlag{Name: "no-lock", Usage: "do not take the shared cache lock. Risk: a gc running meanwhile " +
			"does not wait, and decides from the roots it listed before this change (a pin it did not see does not keep " +
			"the manifests it expires)"},
	}
}

// onLockedRoot is onRoot with the shared cache lock held while fn runs
// (unless --no-lock), as a push holds it: a gc running meanwhile would
// decide from the roots it listed before the change.
func onLockedRoot(fn func(c *cli.Context, b s3cache.Bucket, name string) error) cli.ActionFunc {
	return onRoot(func(c *cli.Context, b s3cache.Bucket, name string) error {
		if c.Bool("no-lock") {
			return fn(c, b, name)
		}
		l, err := lock.Acquire(c.Context, b, lock.Shared, lock.Options{
			Command: "roots " + c.Command.Name, Wait: c.Duration("lock-wait"), Logger: slog.Default()})
		if errors.Is(err, lock.ErrLocked) {
			return withCode(exitFailure, err)
		}
		if err != nil {
			return err
		}
		defer l.Release()
		return fn(c, b, name)
	})
}
