package main

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check that every narinfo in a cache has its NAR and its closure (and valid signatures)",
		UsageText: "nixbucket verify --cache URL [--trusted-public-key KEY]... [--deep] [--jobs N] [--json]",
		Description: "Lists the cache once and checks every narinfo: it parses, its NAR exists with its FileSize, " +
			"every reference has a narinfo; with --trusted-public-key, one of the keys signed it; with --deep, " +
			"every NAR is downloaded and its hashes, sizes and structure checked. Exits 1 if anything is wrong.",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.StringSliceFlag{Name: "trusted-public-key", EnvVars: []string{"NIXBUCKET_TRUSTED_PUBLIC_KEYS"},
				Usage: "require a valid signature by this `KEY` (name:base64, as in trusted-public-keys); repeatable"},
			&cli.BoolFlag{Name: "deep", Usage: "download every NAR and check FileHash, NarHash, sizes and NAR structure"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 8, Usage: "NARs checked at once with --deep"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON on stdout"},
		},
		Action: verifyAction,
	}
}

func verifyAction(c *cli.Context) error {
	ctx := c.Context
	if c.NArg() > 0 {
		return usageErrorf("verify takes no arguments, got %q", c.Args().First())
	}
	if c.Int("jobs") < 1 {
		return usageErrorf("--jobs must be at least 1, got %d", c.Int("jobs"))
	}
	u, err := cacheURL(c)
	if err != nil {
		return err
	}
	var keys []signing.PublicKey
	for _, list := range c.StringSlice("trusted-public-key") {
		ks, err := signing.ParsePublicKeys(list)
		if err != nil {
			return withCode(exitBadKey, fmt.Errorf("--trusted-public-key: %w", err))
		}
		for _, k := range ks {
			keys = append(keys, k)
		}
	}
	b, err := openBucket(ctx, u)
	if err != nil {
		return err
	}
	r, err := verify.Check(ctx, b, verify.Options{
		TrustedKeys: signing.NewPublicKeys(keys...),
		Deep:        c.Bool("deep"),
		Jobs:        c.Int("jobs"),
		Logger:      slog.Default(),
	})
	if err != nil {
		return fmt.Errorf("verifying %s: %w", u, err)
	}
	w := c.App.Writer
	if c.Bool("json") {
		if err := json.NewEncoder(w).Encode(r); err != nil {
			return err
		}
	} else {
		for _, f := range r.Faults {
			fmt.Fprintln(w, f)
		}
		fmt.Fprintln(w, verifySummary(r, len(keys) > 0))
	}
	if !r.OK() {
		return withCode(exitFailure, fmt.Errorf("%d faults in %s; see the report on stdout", len(r.Faults), u))
	}
	return nil
}

// verifySummary is the one line verify prints about a report.
func verifySummary(r *verify.Report, signed bool) string {
	verdict := "ok"
	if r.Objects == 0 {
		return "ok: the cache is empty (no objects at all; is the URL right?)"
	}
	if !r.OK() {
		verdict = fmt.Sprintf("%d faults", len(r.Faults))
	}
	s := fmt.Sprintf("%s: %d narinfos, %d NARs (%d not referenced)", verdict, r.NarInfos, r.NARs, r.OrphanNARs)
	if signed {
		s += fmt.Sprintf(", %d signed by a trusted key", r.Signed)
	}
	if r.Deep {
		s += fmt.Sprintf("; %d NARs downloaded (%s) and checked (%s of NAR)",
			r.NARsChecked, humanize.IBytes(r.FileBytes), humanize.IBytes(r.NarBytes))
	}
	return s
}
