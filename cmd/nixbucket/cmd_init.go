package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create the bucket if it does not exist and write nix-cache-info",
		UsageText: "nixbucket init --cache URL [--priority N] [--abort-multipart-days N | --no-lifecycle]",
		Description: "The URL's priority= and want-mass-query= (or --priority) set nix-cache-info's fields; " +
			"an existing nix-cache-info is rewritten only when they ask for other values than it has. " +
			"On S3, init also adds the lifecycle rule " + s3cache.AbortMultipartRuleID + ", which aborts multipart uploads " +
			"left incomplete (by killed pushes) after --abort-multipart-days, keeping the bucket's other rules; " +
			"where the server keeps no such rule, init says so, and gc aborts old uploads there.",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.IntFlag{Name: "priority", Value: layout.DefaultPriority, Usage: "the cache's Priority in nix-cache-info (lower is preferred; default: the URL's priority=, else 40)"},
			&cli.IntFlag{Name: "abort-multipart-days", Value: defaultAbortDays, Usage: "S3: abort multipart uploads still incomplete `N` days after they began (a bucket lifecycle rule)"},
			&cli.BoolFlag{Name: "no-lifecycle", Usage: "S3: add no lifecycle rule"},
		},
		Action: func(c *cli.Context) error {
			ctx := c.Context
			u, err := cacheURL(c)
			if err != nil {
				return err
			}
			if c.Int("abort-multipart-days") < 1 {
				return usageErrorf("--abort-multipart-days must be at least 1, got %d (--no-lifecycle adds no rule)", c.Int("abort-multipart-days"))
			}
			if u.Scheme == s3cache.SchemeS3 {
				err := s3cache.CreateBucket(ctx, u, s3Options(ctx))
				if err != nil && !errors.Is(err, s3cache.ErrAccessDenied) {
					return err
				}
			}
			if c.Int("priority") < 0 {
				return usageErrorf("--priority must not be negative, got %d", c.Int("priority"))
			}
			if u.StoreDir != "" && u.StoreDir != storepath.DefaultDir() {
				return usageErrorf("the cache URL says store=%s, but the local store is %s", u.StoreDir, storepath.DefaultDir())
			}
			b, err := openBucket(ctx, u)
			if err != nil {
				return err
			}
			want := push.CacheInfo{StoreDir: storepath.DefaultDir(), WantMassQuery: true, Priority: layout.DefaultPriority}
			if info := cacheInfo(u); info != nil {
				want = *info
			}
			if c.IsSet("priority") {
				want.Priority = c.Int("priority")
			}
			have, err := want.Ensure(ctx, b)
			if err != nil {
				return err
			}
			asked := c.IsSet("priority") || u.Priority != nil || u.WantMassQuery != nil
			ready := fmt.Sprintf("cache %s is ready\n", u)
			if asked && have != want {
				if err := want.Write(ctx, b); err != nil {
					return err
				}
				ready = fmt.Sprintf("cache %s is ready; nix-cache-info updated (WantMassQuery %v, Priority %d)\n", u, want.WantMassQuery, want.Priority)
			}
			if _, err := io.WriteString(c.App.Writer, ready); err != nil {
				return err
			}
			if l, ok := b.(s3cache.Lifecycler); ok && !c.Bool("no-lifecycle") {
				line, err := abortMultipartRule(ctx, l, c.Int("abort-multipart-days"))
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(c.App.Writer, line)
				return err
			}
			return nil
		},
	}
}
