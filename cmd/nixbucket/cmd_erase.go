package main

import (
	"fmt"
	"log/slog"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

func eraseCommand() *cli.Command {
	return &cli.Command{
		Name:      "erase",
		Usage:     "delete every object of the cache (or under --prefix): mc rm --recursive --force",
		UsageText: "nixbucket erase --cache URL [--prefix P] [--wait DURATION] (--yes | --dry-run)",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.StringFlag{Name: "prefix", Usage: "erase only the keys starting with `P`"},
			&cli.BoolFlag{Name: "yes", Usage: "really delete"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "count what would be deleted"},
			&cli.StringFlag{Name: "wait", Value: "0s", Usage: "wait up to `DURATION` for running pushes or gc (the lock) instead of failing"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("erase takes no arguments, got %q", c.Args().First())
			}
			dry := c.Bool("dry-run")
			if !dry && !c.Bool("yes") {
				return usageErrorf("erase deletes the whole cache%s: add --yes to confirm, or --dry-run to count", prefixNote(c.String("prefix")))
			}
			wait, err := parseDuration(c.String("wait"))
			if err != nil {
				return usageErrorf("--wait: %v", err)
			}
			b, err := cacheBucket(c)
			if err != nil {
				return err
			}
			own := func(string) bool { return false }
			if !dry {
				// Like gc, erase must not run beside a push.
				l, err := lock.Acquire(c.Context, b, lock.Exclusive, lock.Options{Command: "erase", Wait: wait, Logger: slog.Default()})
				if err != nil {
					return err
				}
				defer l.Release()
				own = l.Owns // its key changes at each refresh
			}
			var keys []string
			var bytes int64
			err = b.List(c.Context, c.String("prefix"), func(o s3cache.ObjectInfo) error {
				if !own(o.Key) {
					keys = append(keys, o.Key)
					bytes += o.Size
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("listing the cache: %w", err)
			}
			if dry {
				_, err := fmt.Fprintf(c.App.Writer, "would delete %d objects (%s)%s\n", len(keys), humanize.IBytes(uint64(bytes)), prefixNote(c.String("prefix")))
				return err
			}
			// Narinfos go first, so that no reader sees one without its NAR.
			var first, rest []string
			for _, k := range keys {
				if _, ok := layout.NarInfoHash(k); ok {
					first = append(first, k)
				} else {
					rest = append(rest, k)
				}
			}
			for _, batch := range [][]string{first, rest} {
				if len(batch) == 0 {
					continue
				}
				if err := b.Delete(c.Context, batch...); err != nil {
					return fmt.Errorf("erasing: %w", err)
				}
			}
			_, err = fmt.Fprintf(c.App.Writer, "deleted %d objects (%s)%s\n", len(keys), humanize.IBytes(uint64(bytes)), prefixNote(c.String("prefix")))
			return err
		},
	}
}

func prefixNote(p string) string {
	if p == "" {
		return ""
	}
	return fmt.Sprintf(" under %q", p)
}
