package main

import (
	"errors"
	"fmt"

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
		UsageText: "nixbucket init --cache URL [--priority N]",
		Description: "The URL's priority= and want-mass-query= (or --priority) set nix-cache-info's fields; " +
			"an existing nix-cache-info is rewritten only when they ask for other values than it has.",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.IntFlag{Name: "priority", Value: layout.DefaultPriority, Usage: "the cache's Priority in nix-cache-info (lower is preferred; default: the URL's priority=, else 40)"},
		},
		Action: func(c *cli.Context) error {
			ctx := c.Context
			u, err := cacheURL(c)
			if err != nil {
				return err
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
			if asked && have != want {
				if err := want.Write(ctx, b); err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.App.Writer, "cache %s is ready; nix-cache-info updated (WantMassQuery %v, Priority %d)\n", u, want.WantMassQuery, want.Priority)
				return err
			}
			_, err = fmt.Fprintf(c.App.Writer, "cache %s is ready\n", u)
			return err
		},
	}
}
