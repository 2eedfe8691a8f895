package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// skipSignedByFlag is push's --skip-signed-by, repeatable, not split on
// commas.
func skipSignedByFlag() cli.Flag {
	return &cli.GenericFlag{Name: "skip-signed-by", Value: &listFlag{},
		Usage: "leave upstream the paths the local store has a signature of by key `NAME` (e.g. cache.nixos.org-1): " +
			"not uploaded, still satisfied references, recorded as upstream (repeatable)"}
}

// skipSignedBy returns the --skip-signed-by names; none for a command
// without the flag.
func skipSignedBy(c *cli.Context) []string { return listValues(c, "skip-signed-by") }

// checkSkipSignedBy refuses an empty key name or one with a ':'.
func checkSkipSignedBy(c *cli.Context) error {
	for _, n := range skipSignedBy(c) {
		if n == "" || strings.Contains(n, ":") {
			return usageErrorf("--skip-signed-by %q: give a key name as in its signatures (cache.nixos.org-1), without ':'", n)
		}
	}
	return nil
}
