package main

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/httpcache"
	"github.com/nixbucket/nixbucket/s3cache"
)

// pushTokenEnv holds the token of a push through an HTTP binary cache
// (serve --accept-push).
const pushTokenEnv = "NIXBUCKET_PUSH_TOKEN"

// netrcFileFlag is push's --netrc-file: where the token of an http(s)
// cache is looked up when NIXBUCKET_PUSH_TOKEN is not set.
func netrcFileFlag() cli.Flag {
	return &cli.StringFlag{Name: "netrc-file", Usage: "for an http(s):// cache, the push token is the password of its host in `FILE` (default ~/.netrc) unless " + pushTokenEnv + " is set"}
}

// isHTTPCache reports whether raw names an HTTP binary cache, which push
// writes through `nixbucket serve --accept-push`.
func isHTTPCache(raw string) bool {
	return strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://")
}

// httpCacheURL parses an http(s):// cache URL: the cache's address, and
// the store parameters a push reads (secret-key=, compression=, …), as
// for a file:// cache. Its Endpoint is the address.
func httpCacheURL(raw string) (*s3cache.URL, error) {
	pu, err := url.Parse(raw)
	if err != nil || pu.Host == "" {
		return nil, usageErrorf("cache URL %q: want http(s)://HOST[/PATH][?PARAMS]", raw)
	}
	if pu.User != nil {
		return nil, usageErrorf("cache URL %s: put no user or password in the URL; give the push token with %s or a netrc file", pu.Redacted(), pushTokenEnv)
	}
	query := pu.RawQuery
	pu.RawQuery, pu.Fragment = "", ""
	u, err := s3cache.ParseURL("file:///?" + query)
	if err != nil {
		return nil, usageErrorf("cache URL %s: %s", pu, strings.ReplaceAll(err.Error(), "file://", "an http(s) cache"))
	}
	u.Scheme, u.Dir, u.Endpoint = pu.Scheme, "", strings.TrimSuffix(pu.String(), "/")
	return u, nil
}

// checkHTTPPush refuses what a push through an HTTP binary cache cannot
// do: record a root (roots/ is not the server's to write) or repair
// (it downloads and lists).
func checkHTTPPush(c *cli.Context) error {
	if !isHTTPCache(c.String("cache")) {
		return nil
	}
	switch {
	case c.String("root") != "":
		return usageErrorf("--root needs a bucket: a push through an http(s) cache records no root; pin it with `nixbucket roots` on the bucket")
	case c.Bool("repair"):
		return usageErrorf("--repair needs a bucket: run verify --deep --repair on it")
	}
	return nil
}

// openPushBucket opens the cache push writes to: an HTTP binary cache
// with the push token, or the bucket u names.
func openPushBucket(c *cli.Context, u *s3cache.URL) (s3cache.Bucket, error) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return openURL(c.Context, u)
	}
	return openHTTPCache(c.Context, u, c.String("netrc-file"))
}

// openHTTPCache opens the HTTP binary cache u, authenticated with the
// token from NIXBUCKET_PUSH_TOKEN, else from netrcFile ("" for
// ~/.netrc, which may be missing).
func openHTTPCache(ctx context.Context, u *s3cache.URL, netrcFile string) (s3cache.Bucket, error) {
	pu, err := url.Parse(u.Endpoint)
	if err != nil {
		return nil, usageErrorf("cache URL %s: %v", u.Endpoint, err)
	}
	opts := httpcache.Options{Token: strings.TrimSpace(os.Getenv(pushTokenEnv)), Net: s3Options(ctx), Logger: slog.Default()}
	if opts.Token == "" {
		optional := netrcFile == ""
		if optional {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, usageErrorf("no push token: set %s or give --netrc-file", pushTokenEnv)
			}
			netrcFile = filepath.Join(home, ".netrc")
		}
		creds, ok, err := httpcache.ReadNetrc(netrcFile, pu.Hostname(), optional)
		if err != nil {
			return nil, usageErrorf("--netrc-file: %w", err)
		}
		if !ok && !optional {
			return nil, usageErrorf("--netrc-file %s has no entry for %s", netrcFile, pu.Hostname())
		}
		opts.User, opts.Token = creds.Login, creds.Password
	}
	if opts.Token == "" {
		slog.Warn("pushing without a push token: set " + pushTokenEnv + " or give --netrc-file")
	}
	b, err := httpcache.New(u.Endpoint, opts)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return b, nil
}

// errHTTPNoList is why commands other than push refuse an http(s) cache.
var errHTTPNoList = errors.New("an http(s) cache can only be pushed to (nixbucket push); give the bucket's s3:// or file:// URL")

// httpCacheError refuses an http(s):// cache for commands that need a
// bucket.
func httpCacheError(raw string) error {
	return usageErrorf("cache %s: %w", raw, errHTTPNoList)
}
