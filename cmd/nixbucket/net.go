package main

import (
	"context"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/s3cache"
)

// netFlags are the global options that bound how long a command waits on
// the S3 server.
func netFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "connect-timeout", Value: s3cache.DefaultConnectTimeout, EnvVars: []string{"NIXBUCKET_CONNECT_TIMEOUT"},
			Usage: "give up a connection to the S3 server (TCP and TLS) after `DURATION`, and retry"},
		&cli.DurationFlag{Name: "stall-timeout", Value: s3cache.DefaultStallTimeout, EnvVars: []string{"NIXBUCKET_STALL_TIMEOUT"},
			Usage: "abort and retry a request that moved no byte, either way, for `DURATION`"},
		&cli.DurationFlag{Name: "retry-for", Value: s3cache.DefaultRetryFor, EnvVars: []string{"NIXBUCKET_RETRY_FOR"},
			Usage: "keep retrying a request that fails transiently (5xx, reset, stall) for `DURATION` in all, then exit 5"},
	}
}

type s3OptionsKey struct{}

// withS3Options reads the global network options into the context that
// every command runs with.
func withS3Options(c *cli.Context) error {
	opts := s3cache.S3Options{
		ConnectTimeout: c.Duration("connect-timeout"),
		StallTimeout:   c.Duration("stall-timeout"),
		RetryFor:       c.Duration("retry-for"),
	}
	for name, d := range map[string]time.Duration{"connect-timeout": opts.ConnectTimeout, "stall-timeout": opts.StallTimeout, "retry-for": opts.RetryFor} {
		if d <= 0 {
			return usageErrorf("--%s must be positive, got %v", name, d)
		}
	}
	c.Context = context.WithValue(c.Context, s3OptionsKey{}, opts)
	return nil
}

// s3Options returns the options S3 buckets are opened with.
func s3Options(ctx context.Context) s3cache.S3Options {
	opts, _ := ctx.Value(s3OptionsKey{}).(s3cache.S3Options)
	return opts
}

// openURL opens the bucket u names, with the global network options for
// S3; every command opens its buckets here. It does not contact the
// server.
func openURL(ctx context.Context, u *s3cache.URL) (s3cache.Bucket, error) {
	if u.Scheme == s3cache.SchemeS3 {
		return s3cache.OpenS3(ctx, u, s3Options(ctx))
	}
	return s3cache.Open(ctx, u)
}
