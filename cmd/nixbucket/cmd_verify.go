package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/compression"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/verify"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check that every narinfo in a cache has its NAR and its closure (and valid signatures)",
		UsageText: "nixbucket verify --cache URL [--trusted-public-key KEY]... [--deep [--repair]] [--require-complete] [--jobs N] [--json]",
		Description: "Lists the cache once and checks every narinfo: it parses, its NAR exists with its FileSize, " +
			"every reference has a narinfo; with --trusted-public-key, one of the keys signed it; with --deep, " +
			"every NAR is downloaded and its hashes, sizes and structure checked. Exits 1 if anything is wrong.\n\n" +
			"A reference that push --skip-signed-by left to an upstream cache (recorded in a root manifest or under " +
			"upstream/) is counted (\"N references left to upstream\"), not a fault; --require-complete makes it one.\n\n" +
			"With --repair, every NAR found missing or damaged is uploaded again from the local store when the local " +
			"path has the narinfo's NarHash, under the shared cache lock, and its narinfo rewritten with the new " +
			"URL, Compression, FileHash and FileSize (its signatures, which do not cover those, stay valid). " +
			"Paths it cannot repair are listed with the reason. Exits 0 when every fault found was repaired.",
		Flags: []cli.Flag{
			cacheFlag(),
			trustedKeyFlag("require a valid signature by this key"),
			&cli.BoolFlag{Name: "deep", Usage: "download every NAR and check FileHash, NarHash, sizes and NAR structure"},
			&cli.BoolFlag{Name: "repair", Usage: "with --deep, upload every missing or damaged NAR again from the local store"},
			&cli.BoolFlag{Name: "require-complete", Usage: "report the references left to an upstream cache (push --skip-signed-by) as missing"},
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
	if c.Bool("repair") && !c.Bool("deep") {
		return usageErrorf("--repair needs --deep: only downloading the NARs finds the damaged ones")
	}
	keys, err := trustedKeys(c)
	if err != nil {
		return err
	}
	b, err := openBucket(ctx, u)
	if err != nil {
		return err
	}
	opts := verify.Options{
		TrustedKeys: keys,
		Deep:        c.Bool("deep"),
		Jobs:        c.Int("jobs"),
		Logger:      slog.Default(),

		RequireComplete: c.Bool("require-complete"),
	}
	if c.Bool("repair") {
		ro, closeStore, err := repairOptions(ctx, u, "verify --repair")
		if err != nil {
			return err
		}
		defer closeStore()
		opts.Repair = ro
	}
	r, err := verify.Check(ctx, b, opts)
	if err != nil {
		if r != nil { // a repair failed: say what it did before
			printVerifyReport(c.App.Writer, r, len(keys) > 0, c.Bool("json"))
		}
		return fmt.Errorf("verifying %s: %w", u, err)
	}
	if err := printVerifyReport(c.App.Writer, r, len(keys) > 0, c.Bool("json")); err != nil {
		return err
	}
	if left := len(r.Unresolved()); left > 0 {
		if opts.Repair != nil {
			return withCode(exitFailure, fmt.Errorf("%d of %d faults in %s not repaired; see the report on stdout", left, len(r.Faults), u))
		}
		return withCode(exitFailure, fmt.Errorf("%d faults in %s; see the report on stdout", len(r.Faults), u))
	}
	return nil
}

// repairOptions are the options of a repair from the local store, under
// the shared lock: a NAR is uploaded with its narinfo's compression when
// nixbucket writes it, else as the URL says (compression=, else xz). A
// store that does not open is reported, per path, by the repair. The
// returned function closes the store.
func repairOptions(ctx context.Context, u *s3cache.URL, command string) (*verify.RepairOptions, func(), error) {
	level, err := compression.NixLevel(cmp.Or(u.Compression, "xz"), u.CompressionLevel)
	if err != nil {
		return nil, nil, usageErrorf("parameter compression-level of %s: %w", u, err)
	}
	ro := &verify.RepairOptions{
		Push: push.Options{Compression: u.Compression, CompressionLevel: level, PartSize: u.PartSize, Logger: slog.Default()},
		Lock: &lock.Options{Command: command, Wait: 2 * lock.DefaultStaleAfter, Logger: slog.Default()},
	}
	s, err := openStore(ctx)
	if err != nil {
		ro.NoStore = err
		return ro, func() {}, nil
	}
	ro.Store = s
	return ro, func() { s.Close() }, nil
}

// printVerifyReport prints r as verify does: JSON, or the faults, the
// repairs and a summary line.
func printVerifyReport(w io.Writer, r *verify.Report, signed, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	for _, f := range r.Faults {
		fmt.Fprintln(w, f)
	}
	for _, rp := range append(slices.Clone(r.Repaired), r.Unrepaired...) {
		fmt.Fprintln(w, rp)
	}
	_, err := fmt.Fprintln(w, verifySummary(r, signed))
	return err
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
	if len(r.Repaired)+len(r.Unrepaired) > 0 {
		verdict += fmt.Sprintf(" (NARs repaired: %d, not: %d)", len(r.Repaired), len(r.Unrepaired))
	}
	s := fmt.Sprintf("%s: %d narinfos, %d NARs (%d not referenced)", verdict, r.NarInfos, r.NARs, r.OrphanNARs)
	if signed {
		s += fmt.Sprintf(", %d signed by a trusted key", r.Signed)
	}
	if r.UpstreamReferences > 0 {
		s += fmt.Sprintf(", %d references left to upstream", r.UpstreamReferences)
	}
	if r.Deep {
		s += fmt.Sprintf("; %d NARs downloaded (%s) and checked (%s of NAR)",
			r.NARsChecked, humanize.IBytes(r.FileBytes), humanize.IBytes(r.NarBytes))
	}
	return s
}
