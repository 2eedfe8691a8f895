package main

import (
	"fmt"
	"io"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
)

// logsFlag is push's --logs.
func logsFlag() cli.Flag {
	return &cli.BoolFlag{Name: "logs", Usage: "also upload the build logs Nix kept of the paths' derivations (log/<drv>, for nix log --store); " +
		"compressed with the URL's log-compression=zstd|br|gzip, plain by default"}
}

// checkLogs refuses push --logs where it cannot work: through an HTTP
// cache (serve --accept-push takes no logs) or with a log-compression
// nixbucket cannot write.
func checkLogs(c *cli.Context, u *s3cache.URL) error {
	if !c.Bool("logs") {
		return nil
	}
	if isHTTPCache(c.String("cache")) {
		return usageErrorf("--logs needs an s3:// or file:// cache: serve --accept-push does not take build logs")
	}
	if err := push.CheckLogCompression(u.LogCompression); err != nil {
		return usageErrorf("parameter log-compression=%s: %v", u.LogCompression, err)
	}
	return nil
}

// printLogsLine prints the build logs a push uploaded, those the cache
// already had, and those it could not upload.
func printLogsLine(w io.Writer, res *push.Result) error {
	_, err := fmt.Fprintf(w, "uploaded %d build logs (%s)", res.Logs, humanize.IBytes(res.LogBytes))
	if err == nil && res.LogsPresent > 0 {
		_, err = fmt.Fprintf(w, "; %d already in the cache", res.LogsPresent)
	}
	if err == nil && res.LogsFailed > 0 {
		_, err = fmt.Fprintf(w, "; %d not (see the warnings)", res.LogsFailed)
	}
	if err == nil {
		_, err = fmt.Fprintln(w)
	}
	return err
}
