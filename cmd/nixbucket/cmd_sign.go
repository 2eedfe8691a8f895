package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/resign"
	"github.com/nixbucket/nixbucket/roots"
)

func signCommand() *cli.Command {
	return &cli.Command{
		Name:  "sign",
		Usage: "add signatures to the narinfos already in a cache, or remove a retired key's (key rotation)",
		UsageText: "nixbucket sign --cache URL [--secret-key-file FILE]... (--all | --root NAME... | PATH...)\n" +
			"    [--trusted-public-key KEY]... [--deep] [--remove-signatures-by NAME]... [--jobs N] [--dry-run] [--json]\n" +
			"    [--no-lock] [--lock-wait DURATION]",
		Description: "Adds one signature per key (--secret-key-file, repeatable; else the URL's secret-key= and secret-keys=, " +
			"else NIXBUCKET_SECRET_KEY) to the narinfos selected: every one (--all), the paths of a root's newest manifest " +
			"(--root NAME, repeatable), or the given store paths or hash parts. A narinfo gains a signature only if it " +
			"carries a valid signature by a --trusted-public-key (or by one of the keys given), or, with --deep, its NAR " +
			"downloaded and re-hashed matches it; the others are listed on stderr, left alone, and the exit status is 1. " +
			"--remove-signatures-by NAME drops the signatures by key NAME (no key needed for that alone). A narinfo whose " +
			"signatures would not change is not written, so a second run writes nothing. Holds the shared cache lock, as " +
			"push does.\n\n" +
			"Example (rotate from key A to key B, then retire A):\n" +
			"   nixbucket sign --cache \"$CACHE\" --all --secret-key-file b.key --trusted-public-key \"$(cat a.pub)\"\n" +
			"   nixbucket sign --cache \"$CACHE\" --all --remove-signatures-by cache.example.org-1",
		Flags: []cli.Flag{
			cacheFlag(),
			secretKeyFileFlag(),
			&cli.BoolFlag{Name: "all", Usage: "sign every narinfo in the cache"},
			&cli.GenericFlag{Name: "root", Value: &listFlag{}, Usage: "sign the paths of root `NAME`'s newest manifest; repeatable"},
			trustedKeyFlag("sign what a valid signature by this key vouches for"),
			&cli.BoolFlag{Name: "deep", Usage: "also sign what no trusted key signed once its NAR, downloaded and re-hashed, matches its narinfo"},
			&cli.GenericFlag{Name: "remove-signatures-by", Value: &listFlag{}, Usage: "remove the signatures by key `NAME`; repeatable"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 8, Usage: "download `N` NARs at once with --deep (narinfos: 4×N)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "say what would change; write nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON on stdout"},
			&cli.BoolFlag{Name: "no-lock", Usage: "do not take the shared cache lock. Risk: a gc running meanwhile does not " +
				"wait, and a narinfo it deletes can be written back without its NAR"},
			&cli.DurationFlag{Name: "lock-wait", Value: 2 * lock.DefaultStaleAfter, Usage: "wait up to `DURATION` for a running gc to finish"},
		},
		Action: signAction,
	}
}

func signAction(c *cli.Context) error {
	if c.Int("jobs") < 1 {
		return usageErrorf("--jobs must be at least 1, got %d", c.Int("jobs"))
	}
	sel := resign.Selection{All: c.Bool("all"), Roots: listValues(c, "root"), Paths: c.Args().Slice()}
	kinds := 0
	for _, set := range []bool{sel.All, len(sel.Roots) > 0, len(sel.Paths) > 0} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return usageErrorf("sign needs exactly one of --all, --root NAME or store paths")
	}
	for _, p := range sel.Paths {
		if _, err := resign.HashPart(p); err != nil {
			return usageErrorf("%w", err)
		}
	}
	for _, name := range sel.Roots {
		if err := roots.CheckName(name); err != nil {
			return withCode(exitUsage, err)
		}
	}
	u, err := cacheURL(c)
	if err != nil {
		return err
	}
	keys, err := pushKeys(c, u)
	if err != nil {
		return err
	}
	remove := listValues(c, "remove-signatures-by")
	if len(keys) == 0 && len(remove) == 0 {
		return errNoSecretKey
	}
	for _, k := range keys {
		if slices.Contains(remove, k.Name()) {
			return usageErrorf("key %s is both to sign with and to remove (--remove-signatures-by)", k.Name())
		}
	}
	trusted, err := trustedKeys(c)
	if err != nil {
		return err
	}
	b, err := openBucket(c.Context, u)
	if err != nil {
		return err
	}
	opts := resign.Options{
		Keys: keys, Remove: remove, TrustedKeys: trusted, Deep: c.Bool("deep"), Select: sel,
		DryRun: c.Bool("dry-run"), Jobs: c.Int("jobs"), Logger: slog.Default(),
	}
	if !c.Bool("no-lock") {
		opts.Lock = &lock.Options{Command: "sign", Wait: c.Duration("lock-wait"), Logger: slog.Default()}
	}
	res, err := resign.Run(c.Context, b, opts)
	if errors.Is(err, lock.ErrLocked) {
		return withCode(exitFailure, err)
	}
	if err != nil {
		return fmt.Errorf("signing in %s: %w", u, err)
	}
	for _, p := range res.Unvouched {
		fmt.Fprintf(c.App.ErrWriter, "unvouched %s: %s\n", p, res.Reasons[p])
	}
	for _, p := range res.Missing {
		fmt.Fprintf(c.App.ErrWriter, "missing %s: not in the cache\n", p)
	}
	if err := printSignResult(c.App.Writer, res, c.Bool("json")); err != nil {
		return err
	}
	var problems []string
	if n := len(res.Unvouched); n > 0 {
		problems = append(problems, fmt.Sprintf("%d narinfos left alone: nothing vouches for them (give --trusted-public-key, or --deep)", n))
	}
	if n := len(res.Missing); n > 0 {
		problems = append(problems, fmt.Sprintf("%d paths not in the cache", n))
	}
	if len(problems) > 0 {
		return withCode(exitFailure, fmt.Errorf("%s; listed above", strings.Join(problems, "; ")))
	}
	return nil
}

// printSignResult prints what sign did: JSON, or the root manifests read
// and one summary line.
func printSignResult(w io.Writer, res *resign.Result, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	for _, m := range res.Manifests {
		fmt.Fprintf(w, "paths of manifest %s\n", m)
	}
	verb := "signed"
	if res.DryRun {
		verb = "would sign"
	}
	_, err := fmt.Fprintf(w, "%s %d of %d narinfos (%d rewritten, %d signatures removed); %d unchanged, %d unvouched\n",
		verb, res.Signed, res.NarInfos, res.Rewritten, res.RemovedSignatures, res.Unchanged, len(res.Unvouched))
	return err
}
