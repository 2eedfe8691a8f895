package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "measure the cache from its listing: objects and bytes by kind, roots, compression, orphan NARs, what gc would reclaim, growth",
		UsageText: "nixbucket stats --cache URL [--json | --prometheus] [--record] [--html FILE] [--grace DURATION]",
		Description: "One LIST of the bucket, one of unfinished uploads, a GET per root manifest, and a GET of each " +
			"narinfo that no root manifest lists (none for a cache pushed with --root). The figures are gc's own dry run: " +
			"\"gc would reclaim\" is what gc's planner decides with the same --grace, keeping every manifest. --record " +
			"appends the figures to stats/history.jsonl in the bucket; --html writes a self-contained page with a growth chart. " +
			"--prometheus prints them in the Prometheus text format, every series labelled with the cache, for node_exporter's " +
			"textfile collector (stats --prometheus > DIR/nixbucket.prom.$$ && mv DIR/nixbucket.prom.$$ DIR/nixbucket.prom).",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the figures as JSON on stdout"},
			&cli.BoolFlag{Name: "prometheus", Usage: "print the figures in the Prometheus text exposition format on stdout (node_exporter's textfile collector)"},
			&cli.BoolFlag{Name: "record", Usage: "append the figures to stats/history.jsonl in the bucket"},
			&cli.StringFlag{Name: "html", Usage: "write an HTML page with the growth chart to `FILE`"},
			&cli.StringFlag{Name: "grace", Value: "24h", Usage: "gc's grace `DURATION`, for the reclaimable estimate"},
		},
		Action: statsAction,
	}
}

func statsAction(c *cli.Context) error {
	ctx := c.Context
	if c.NArg() > 0 {
		return usageErrorf("stats takes no arguments, got %q", c.Args().First())
	}
	if c.Bool("prometheus") && (c.Bool("json") || c.String("html") != "") {
		return usageErrorf("--prometheus prints the figures on stdout in its own format: it goes without --json and --html")
	}
	grace, err := parseDuration(c.String("grace"))
	if err != nil {
		return usageErrorf("--grace: %v", err)
	}
	u, err := cacheURL(c)
	if err != nil {
		return err
	}
	b, err := openBucket(ctx, u)
	if err != nil {
		return err
	}
	optGrace := grace
	if optGrace == 0 {
		optGrace = -1 // explicit 0: no grace, as gc
	}
	r, err := stats.Collect(ctx, b, stats.Options{Grace: optGrace, Logger: slog.Default()})
	if err != nil {
		return err
	}
	if slices.Contains(r.Notes, stats.NoteMinIOUploads) && !isMinIO(ctx, b) {
		r.Notes = slices.DeleteFunc(r.Notes, func(n string) bool { return n == stats.NoteMinIOUploads })
	}
	var history []stats.Point
	if c.Bool("record") {
		if history, err = stats.Record(ctx, b, stats.PointOf(r)); err != nil {
			return err
		}
	} else if c.String("html") != "" {
		if history, err = stats.History(ctx, b); err != nil {
			return err
		}
	}
	if f := c.String("html"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			return withCode(exitNotFound, fmt.Errorf("writing %s: %w", f, err))
		}
		if err := stats.WriteHTML(out, r, history); err != nil {
			out.Close()
			return fmt.Errorf("writing %s: %w", f, err)
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", f, err)
		}
	}
	w := c.App.Writer
	if c.Bool("json") {
		return json.NewEncoder(w).Encode(r)
	}
	if c.Bool("prometheus") {
		return stats.WritePrometheus(w, r, stats.CacheLabel(u))
	}
	fmt.Fprintf(w, "%d objects, %s; %d store paths (%d LIST and %d GET requests; %d of the GETs read narinfos that no root manifest lists)\n",
		r.Total.Objects, humanize.IBytes(uint64(r.Total.Bytes)), r.Paths, r.Lists, r.Gets, r.NarInfoGets)
	for _, k := range stats.Kinds {
		if n := r.ByKind[k]; n.Objects != 0 || n.Bytes != 0 {
			fmt.Fprintf(w, "  %-8s %8d  %s\n", k, n.Objects, humanize.IBytes(uint64(n.Bytes)))
		}
	}
	for _, root := range r.Roots {
		pin := ""
		if root.Pinned {
			pin = ", pinned"
		}
		fmt.Fprintf(w, "root %s: %d manifests, newest %s: %d paths, %s NAR, %s stored%s\n", root.Name, root.Manifests,
			root.Newest.Format(time.RFC3339), root.Paths, humanize.IBytes(root.NarSize), humanize.IBytes(uint64(root.StoredBytes)), pin)
	}
	if r.KnownNarSize > 0 {
		fmt.Fprintf(w, "compression: %s stored for %s of NAR (%.1f%%, %d paths with their NAR)\n",
			humanize.IBytes(uint64(r.KnownStored)), humanize.IBytes(r.KnownNarSize), 100*r.Ratio, r.KnownPaths)
	}
	fmt.Fprintf(w, "NARs no narinfo refers to: %d (%s); narinfos whose NAR is missing: %d; unfinished uploads: %d\n",
		r.Unaccounted.Objects, humanize.IBytes(uint64(r.Unaccounted.Bytes)), r.MissingNARs, r.Uploads)
	if r.UpstreamReferences > 0 {
		fmt.Fprintf(w, "%d references left to upstream\n", r.UpstreamReferences)
	}
	if r.GCRefuses {
		fmt.Fprintf(w, "gc would reclaim nothing: it refuses to run (see the note)\n")
	} else {
		fmt.Fprintf(w, "gc would reclaim (gc's own plan, --grace %s, every manifest kept): %d objects (%s), %d of them (%s) in its next run, the rest once condemned for the grace\n",
			grace, r.Reclaimable.Objects, humanize.IBytes(uint64(r.Reclaimable.Bytes)), r.ReclaimableNow.Objects, humanize.IBytes(uint64(r.ReclaimableNow.Bytes)))
	}
	if !r.LastGC.IsZero() {
		fmt.Fprintf(w, "last gc run ended %s\n", r.LastGC.Format(time.RFC3339))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if c.Bool("record") {
		fmt.Fprintf(w, "recorded in %s (%d points)\n", stats.HistoryKey, len(history))
	}
	return nil
}

// isMinIO reports whether b is served by MinIO, from the Server header of
// its answer; true when that cannot be told, so that the note stays.
func isMinIO(ctx context.Context, b s3cache.Bucket) bool {
	s, ok := b.(interface {
		ServerName(context.Context) (string, error)
	})
	if !ok {
		return false // file://, memory: no server
	}
	name, err := s.ServerName(ctx)
	if err != nil {
		slog.Debug("asking the bucket's server its name", "err", err)
		return true
	}
	return strings.Contains(strings.ToLower(name), "minio")
}
