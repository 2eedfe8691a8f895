package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/store"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create the bucket if it does not exist and write nix-cache-info",
		UsageText: "nixbucket init --cache URL [--priority N]",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.IntFlag{Name: "priority", Value: 40, Usage: "the cache's Priority in nix-cache-info (lower is preferred)"},
		},
		Action: func(c *cli.Context) error {
			ctx := c.Context
			u, err := cacheURL(c)
			if err != nil {
				return err
			}
			if u.Scheme == s3cache.SchemeS3 {
				err := s3cache.CreateBucket(ctx, u, s3cache.S3Options{})
				if err != nil && !errors.Is(err, s3cache.ErrAccessDenied) {
					return withCode(remoteCode(err), fmt.Errorf("creating bucket %s: %w", u.Bucket, err))
				}
			}
			b, err := openBucket(ctx, u)
			if err != nil {
				return err
			}
			if err := push.EnsureCacheInfo(ctx, b, store.Dir(), c.Int("priority")); err != nil {
				return withCode(remoteCode(err), err)
			}
			_, err = fmt.Fprintf(c.App.Writer, "cache %s is ready\n", u)
			return err
		},
	}
}
