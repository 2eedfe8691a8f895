package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/compression"
	"github.com/nixbucket/nixbucket/httpcache"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
	"github.com/nixbucket/nixbucket/verify"
)

// cacheFlag is the --cache flag (alias --to) with its NIXBUCKET_CACHE fallback.
func cacheFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "cache",
		Aliases: []string{"to"},
		EnvVars: []string{"NIXBUCKET_CACHE"},
		Usage:   "binary cache `URL`: s3://BUCKET?endpoint=…&region=… or file:///DIR",
	}
}

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:  "push",
		Usage: "upload store paths and their closure to a binary cache (nix copy --to)",
		UsageText: "nixbucket push --cache URL [--include-outputs | --no-recursive] [--stdin] [--root NAME] [--repair] [--netrc-file FILE]\n" +
			"    [--skip-signed-by NAME...] [--logs]\n" +
			pushFlagsUsage + " PATH...",
		Description: "PATH is a store path, a path inside one, or a link to one such as nix build's ./result. To push an\n" +
			"installable such as nixpkgs#hello, build it first: nix build nixpkgs#hello, then push ./result.\n\n" +
			"Example:\n" +
			"   nixbucket push --cache 's3://nix?endpoint=https://garage.example.org&region=garage' --secret-key-file cache.key ./result" +
			"\n\nWith --cache http(s)://HOST[/PATH], push needs no bucket credentials: it writes through `nixbucket serve\n" +
			"--accept-push`, which checks and stores what it gets, with the push token from NIXBUCKET_PUSH_TOKEN or\n" +
			"the password of HOST in --netrc-file (default ~/.netrc).",
		Flags: append([]cli.Flag{
			cacheFlag(),
			&cli.BoolFlag{Name: "include-outputs", Usage: "for every .drv in the closure, also push its valid outputs and their closures"},
			&cli.BoolFlag{Name: "no-recursive", Usage: "push only the given paths (their references must already be in the cache)"},
			&cli.BoolFlag{Name: "stdin", Usage: "read more paths from stdin, one per line (e.g. from nix-store -qR)"},
			&cli.StringFlag{Name: "root", Usage: "record a root manifest roots/`NAME`/<time>-<id>.json of the pushed closure (kept by gc)"},
			&cli.BoolFlag{Name: "repair", Usage: "also download the NARs of the paths the cache had, and upload the missing or damaged ones again (as verify --deep --repair)"},
			netrcFileFlag(),
			skipSignedByFlag(),
			logsFlag(),
		}, pushFlags()...),
		Action: pushAction,
	}
}

// pushFlags are the flags of every command that pushes (push, toolchain
// refresh), read by newPushSetup and pushClosure.
func pushFlags() []cli.Flag {
	flags := append(uploadFlags(),
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "say what would be uploaded; upload nothing"},
		&cli.BoolFlag{Name: "json", Usage: "print the summary as JSON on stdout"})
	return append(append(flags, lockFlags()...),
		&cli.DurationFlag{Name: "progress-interval", Value: 5 * time.Second, Usage: "print a progress line every `DURATION` when stderr is not a terminal"})
}

// uploadFlags are the flags of how a push uploads (--jobs, --compression,
// --secret-key-file), shared by push and watch.
func uploadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 8, Usage: "upload `N` NARs at once"},
		&cli.StringFlag{Name: "compression", Usage: "compress the NARs with `xz|zstd|none` (default: the URL's compression=, else xz)"},
		secretKeyFileFlag(),
	}
}

// lockFlags are the flags of a push's shared cache lock (--no-lock,
// --lock-wait), shared by push and watch.
func lockFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "no-lock", Usage: "do not take the shared cache lock. Risk: a gc running meanwhile does not " +
			"wait for this push, and may delete paths it found present (only gc's --grace protects them): narinfos " +
			"pushed then can refer to paths the cache no longer has"},
		&cli.DurationFlag{Name: "lock-wait", Value: 2 * lock.DefaultStaleAfter, Usage: "wait up to `DURATION` for a running gc to finish"},
	}
}

// pushFlagsUsage is the synopsis of pushFlags, for the USAGE lines of the
// commands that have them.
const pushFlagsUsage = "    [--jobs N] [--compression xz|zstd|none] [--secret-key-file FILE] [--dry-run] [--json]\n" +
	"    [--no-lock] [--lock-wait DURATION] [--progress-interval DURATION]"

func pushAction(c *cli.Context) error {
	args := c.Args().Slice()
	if c.Bool("stdin") {
		more, err := readLines(c.App.Reader)
		if err != nil {
			return fmt.Errorf("reading paths from stdin: %w", err)
		}
		args = append(args, more...)
	}
	if len(args) == 0 {
		return usageErrorf("push needs store paths (as arguments or with --stdin)")
	}
	if c.Bool("no-recursive") && c.Bool("include-outputs") {
		return usageErrorf("--include-outputs needs the closure; drop --no-recursive")
	}
	if c.Bool("repair") && c.Bool("dry-run") {
		return usageErrorf("--repair writes to the cache; drop --dry-run (verify --deep lists the damaged NARs)")
	}
	if err := checkHTTPPush(c); err != nil {
		return err
	}
	if err := checkSkipSignedBy(c); err != nil {
		return err
	}
	ps, err := newPushSetup(c)
	if err != nil {
		return err
	}
	if err := checkLogs(c, ps.url); err != nil {
		return err
	}
	ps.repair = c.Bool("repair")
	// Bad paths fail before the bucket sees any request.
	tops, err := resolvePaths(storepath.DefaultDir(), args)
	if err != nil {
		return err
	}
	// The bucket's first answer, nix-cache-info, is awaited only once the
	// closure is known: its round trip, the listing's and the closure's
	// computation overlap.
	b, err := openPushBucket(c, ps.url)
	if err != nil {
		return err
	}
	return pushClosure(c, ps, b, push.ReadCacheInfo(c.Context, b), tops, !c.Bool("no-recursive"), c.Bool("include-outputs"))
}

// pushSetup is a push's checked settings, shared by push and toolchain
// refresh: the cache, the compression, the signing key and the root name.
type pushSetup struct {
	url   *s3cache.URL
	algo  string
	level int // compression.Options.Level
	keys  []*signing.SecretKey
	root  string // "" records no root
	// repair, after the push, checks the NARs the cache had and repairs
	// the damaged ones (push --repair).
	repair bool
	// info, when the URL sets priority= or want-mass-query=, is the
	// nix-cache-info to write if the cache has none.
	info *push.CacheInfo
}

// newPushSetup checks the flags every pushing command has (--cache,
// --jobs, --compression, --secret-key-file, --root) before any work.
func newPushSetup(c *cli.Context) (*pushSetup, error) {
	if c.Int("jobs") < 1 {
		return nil, usageErrorf("--jobs must be at least 1, got %d", c.Int("jobs"))
	}
	u, err := cacheURL(c)
	if err != nil {
		return nil, err
	}
	algo := u.Compression
	if f := c.String("compression"); f != "" {
		algo = f
	}
	if algo == "" {
		algo = "xz"
	}
	if err := checkCompression(algo); err != nil {
		return nil, err
	}
	level, err := compression.NixLevel(algo, u.CompressionLevel)
	if err != nil {
		return nil, usageErrorf("parameter compression-level of %s: %w", u, err)
	}
	if u.StoreDir != "" && u.StoreDir != storepath.DefaultDir() {
		return nil, usageErrorf("the cache URL says store=%s, but the local store is %s; push from a store in %s, or drop store=", u.StoreDir, storepath.DefaultDir(), u.StoreDir)
	}
	root := c.String("root")
	if root != "" {
		if err := roots.CheckName(root); err != nil {
			return nil, withCode(exitUsage, err)
		}
	}
	keys, err := pushKeys(c, u)
	if err != nil {
		return nil, err
	}
	return &pushSetup{url: u, algo: algo, level: level, keys: keys, root: root, info: cacheInfo(u)}, nil
}

// cacheInfo is the nix-cache-info that u asks for with priority= or
// want-mass-query=, or nil when it asks for neither (Push then writes
// the defaults: WantMassQuery 1, Priority 40).
func cacheInfo(u *s3cache.URL) *push.CacheInfo {
	if u.Priority == nil && u.WantMassQuery == nil {
		return nil
	}
	info := &push.CacheInfo{StoreDir: storepath.DefaultDir(), WantMassQuery: true, Priority: layout.DefaultPriority}
	if u.Priority != nil {
		info.Priority = *u.Priority
	}
	if u.WantMassQuery != nil {
		info.WantMassQuery = *u.WantMassQuery
	}
	return info
}

// pushClosure pushes tops (resolved store paths) to b as push
// does: under the shared lock, with their closure when recursive (and the
// outputs of derivations with includeOutputs), recording ps.root; it
// prints the summary on c.App.Writer. info, if not nil, is a read of
// nix-cache-info started with the bucket unchecked (not by openBucket):
// its failure fails the push as openBucket's would.
func pushClosure(c *cli.Context, ps *pushSetup, b s3cache.Bucket, info *push.CacheInfoRead, tops []string, recursive, includeOutputs bool) error {
	ctx := c.Context
	// List the cache while the closure is computed; Push takes the shared
	// lock itself if there is anything to write, and checks again under it.
	lctx, cancelListing := context.WithCancel(ctx)
	defer cancelListing()
	var listing *push.Listing
	if _, http := b.(*httpcache.Bucket); !http { // an HTTP cache cannot list: HEADs
		listing = push.StartListing(lctx, b)
	}
	s, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	var root *push.RootOptions
	if ps.root != "" {
		root = &push.RootOptions{Name: ps.root, TopLevel: tops}
	}
	g, err := closureOf(ctx, s, tops, recursive, includeOutputs)
	if err != nil {
		return err
	}
	if len(ps.keys) == 0 {
		slog.Warn("pushing unsigned narinfos: Nix will not substitute them with require-sigs; give --secret-key-file or NIXBUCKET_SECRET_KEY")
	}
	if info != nil {
		if _, err := info.Wait(ctx); err != nil && !errors.Is(err, s3cache.ErrNotFound) {
			return fmt.Errorf("opening cache %s: %w", ps.url.String(), err)
		}
	}
	if ps.info != nil && !c.Bool("dry-run") {
		if _, err := ps.info.EnsureFrom(ctx, b, info); err != nil {
			return err
		}
		info = nil // Push reads what was written
	}
	limitMemory()
	counters := new(push.Counters)
	stopProgress := showProgress(ctx, c.App.ErrWriter, counters, c.Bool("json") || c.Bool("dry-run"), c.Duration("progress-interval"))
	res, err := push.Push(ctx, b, g, push.Options{
		Compression:      ps.algo,
		CompressionLevel: ps.level,
		Keys:             ps.keys,
		Jobs:             c.Int("jobs"),
		PartSize:         ps.url.PartSize,
		DryRun:           c.Bool("dry-run"),
		Counters:         counters,
		Logger:           slog.Default(),
		Root:             root,
		Listing:          listing,
		Lock:             pushLock(c),
		CacheInfo:        info,
		SkipSignedBy:     skipSignedBy(c),
		LocalStore:       s,
		Logs:             c.Bool("logs"),
		LogCompression:   ps.url.LogCompression,
	})
	stopProgress(err == nil)
	if err != nil {
		return err
	}
	if ps.repair {
		return repairClosure(c, ps, b, s, g, res)
	}
	return printPushResult(c.App.Writer, res, c.Bool("json"), c.Bool("dry-run"), ps.algo)
}

// repairClosure is the second half of push --repair: the NARs of the
// paths of g that the push found in the cache are downloaded and checked,
// and the damaged ones uploaded again from s (verify.RepairOptions). It
// prints the push's summary and the repair's report, and fails when a
// fault is left.
func repairClosure(c *cli.Context, ps *pushSetup, b s3cache.Bucket, s store.Store, g *closure.Graph, res *push.Result) error {
	pushed := make(map[string]bool, len(res.Missing))
	for _, p := range res.Missing {
		pushed[p] = true
	}
	var had []string
	for _, p := range g.Paths() {
		if !pushed[p] {
			had = append(had, p)
		}
	}
	r := &verify.Report{Faults: []verify.Fault{}}
	if len(had) > 0 {
		var err error
		r, err = verify.Check(c.Context, b, verify.Options{
			Deep:  true,
			Jobs:  c.Int("jobs"),
			Paths: had,
			Repair: &verify.RepairOptions{
				Store: s,
				Push:  push.Options{Compression: ps.algo, CompressionLevel: ps.level, PartSize: ps.url.PartSize, Logger: slog.Default()},
				Lock:  pushLock(c),
			},
			Logger: slog.Default(),
		})
		if err != nil {
			if r != nil {
				printRepair(c.App.Writer, res, r, c.Bool("json"), ps.algo)
			}
			return fmt.Errorf("repairing the closure: %w", err)
		}
	}
	if err := printRepair(c.App.Writer, res, r, c.Bool("json"), ps.algo); err != nil {
		return err
	}
	if left := len(r.Unresolved()); left > 0 {
		return withCode(exitFailure, fmt.Errorf("%d of %d faults in the closure not repaired; see the report on stdout", left, len(r.Faults)))
	}
	return nil
}

// printRepair prints the result of push --repair: with asJSON, the push's
// summary with the faults found and the repairs made; else the push's
// line, the faults, the repairs and a summary of the check.
func printRepair(w io.Writer, res *push.Result, r *verify.Report, asJSON bool, algo string) error {
	if asJSON {
		res.Missing = nil
		return json.NewEncoder(w).Encode(struct {
			*push.Result
			NARsChecked int             `json:"narsChecked"`
			Faults      []verify.Fault  `json:"faults"`
			Repaired    []verify.Repair `json:"repaired"`
			Unrepaired  []verify.Repair `json:"unrepaired"`
		}{res, r.NARsChecked, r.Faults, nonNil(r.Repaired), nonNil(r.Unrepaired)})
	}
	if err := printPushResult(w, res, false, false, algo); err != nil {
		return err
	}
	for _, f := range r.Faults {
		fmt.Fprintln(w, f)
	}
	for _, rp := range append(slices.Clone(r.Repaired), r.Unrepaired...) {
		fmt.Fprintln(w, rp)
	}
	_, err := fmt.Fprintf(w, "checked %d NARs the cache had (%s): %d faults; NARs repaired: %d, not: %d\n",
		r.NARsChecked, humanize.IBytes(r.FileBytes), len(r.Faults), len(r.Repaired), len(r.Unrepaired))
	return err
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// pushMemoryLimit is the soft heap limit of a push: the pipeline's live
// memory is bounded (a few chunks and parts), and this keeps the garbage
// collector from letting dead buffers grow the process past it.
const pushMemoryLimit = 160 << 20

// limitMemory sets the soft memory limit unless GOMEMLIMIT already does.
func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(pushMemoryLimit)
	}
}

// pushLock is the shared lock a push takes, nil with --no-lock.
func pushLock(c *cli.Context) *lock.Options {
	if c.Bool("no-lock") || isHTTPCache(c.String("cache")) { // the server holds the lock
		return nil
	}
	return &lock.Options{Command: "push", Wait: c.Duration("lock-wait"), Logger: slog.Default()}
}

// checkCompression rejects an unknown algorithm as a usage error.
func checkCompression(algo string) error {
	switch algo {
	case "xz", "zstd", "none":
		return nil
	}
	return usageErrorf("unsupported compression %q: use xz, zstd or none", algo)
}

// pushKeys finds the signing keys: --secret-key-file's, else the URL's
// secret-key= and secret-keys=, else NIXBUCKET_SECRET_KEY's; none if
// none is given.
func pushKeys(c *cli.Context, u *s3cache.URL) ([]*signing.SecretKey, error) {
	if len(secretKeyFiles(c)) == 0 && len(u.SecretKeyFiles) > 0 {
		return readSecretKeyFiles(u.SecretKeyFiles)
	}
	return loadSecretKeys(c)
}

// cacheURL parses --cache (or NIXBUCKET_CACHE).
func cacheURL(c *cli.Context) (*s3cache.URL, error) {
	raw := c.String("cache")
	if raw == "" {
		return nil, usageErrorf("no cache: give --cache URL or set NIXBUCKET_CACHE")
	}
	if isHTTPCache(raw) {
		if c.Command.Name != "push" {
			return nil, httpCacheError(raw)
		}
		return httpCacheURL(raw)
	}
	u, err := s3cache.ParseURL(raw)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return u, nil
}

// openBucket opens the bucket and checks that it answers, so that bad
// credentials or a missing bucket fail before any work.
func openBucket(ctx context.Context, u *s3cache.URL) (s3cache.Bucket, error) {
	b, err := openURL(ctx, u)
	if err != nil {
		return nil, err
	}
	_, err = b.Stat(ctx, layout.CacheInfoKey)
	if err != nil && !errors.Is(err, s3cache.ErrNotFound) {
		return nil, fmt.Errorf("opening cache %s: %w", u.String(), err)
	}
	return b, nil
}

func readLines(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

func printPushResult(w io.Writer, res *push.Result, asJSON, dryRun bool, algo string) error {
	if asJSON {
		missing := res.Missing
		if !dryRun {
			res.Missing = nil
		}
		err := json.NewEncoder(w).Encode(res)
		res.Missing = missing
		return err
	}
	if dryRun {
		for _, p := range res.Missing {
			fmt.Fprintln(w, p)
		}
		_, err := fmt.Fprintf(w, "would push %d of %d paths (%s of NAR); %d already in the cache\n",
			res.Pushed, res.Paths, humanize.IBytes(res.NarBytes), res.Skipped)
		if err == nil && res.Upstream > 0 {
			_, err = fmt.Fprintf(w, "would leave %d paths (%s of NAR) upstream\n", res.Upstream, humanize.IBytes(res.UpstreamNarBytes))
		}
		return err
	}
	_, err := fmt.Fprintf(w, "pushed %d of %d paths (%s of NAR, %s %s) in %.1fs; %d already in the cache\n",
		res.Pushed, res.Paths, humanize.IBytes(res.NarBytes), humanize.IBytes(res.FileBytes), algo, res.Seconds, res.Skipped)
	if err == nil && res.Upstream > 0 {
		_, err = fmt.Fprintf(w, "left %d paths (%s of NAR) upstream\n", res.Upstream, humanize.IBytes(res.UpstreamNarBytes))
	}
	if err == nil && (res.Logs > 0 || res.LogsPresent > 0 || res.LogsFailed > 0) {
		err = printLogsLine(w, res)
	}
	return err
}
