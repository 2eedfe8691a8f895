package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/remove"
)

func rmCommand() *cli.Command {
	return &cli.Command{
		Name:  "rm",
		Usage: "remove store paths from the cache (a leaked path): their narinfos now, their NARs through gc",
		UsageText: "nixbucket rm --cache URL [--with-referrers] [--dry-run] [--json] [--lock-wait DURATION] [--no-lock] PATH…\n\n" +
			"Example:\n      nixbucket rm --cache 's3://cache?endpoint=…&region=…' --with-referrers /nix/store/…-leaked",
		Description: "PATH is a store path, its base name (<hash>-<name>) or its hash part. rm deletes the narinfos (what " +
			"Nix sees) and .ls listings; their NARs are condemned and deleted by the first gc run a --grace later. A path " +
			"that other paths in the cache refer to is refused, listing them; --with-referrers removes them too (and their " +
			"referrers), referrers first, so the cache stays complete even if rm is killed. A path a root manifest lists " +
			"is removed anyway, with a warning naming the roots. Takes the exclusive cache lock, as gc does.",
		Flags: []cli.Flag{
			cacheFlag(),
			&cli.BoolFlag{Name: "with-referrers", Usage: "also remove the paths that refer to PATH, directly or not"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be removed; delete nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON on stdout"},
			&cli.DurationFlag{Name: "lock-wait", Usage: "wait up to `DURATION` for running pushes (the lock) instead of failing"},
			&cli.BoolFlag{Name: "no-lock", Usage: "do not take the exclusive cache lock. Risk: a push running meanwhile " +
				"may write a path that refers to one removed"},
		},
		Action: rmAction,
	}
}

func rmAction(c *cli.Context) error {
	paths, err := flagsAfterArgs(c)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageErrorf("rm needs at least one PATH (a store path, base name or hash part)")
	}
	b, err := cacheBucket(c)
	if err != nil {
		return err
	}
	opts := remove.Options{WithReferrers: c.Bool("with-referrers"), DryRun: c.Bool("dry-run"), Logger: slog.Default()}
	if !c.Bool("no-lock") {
		opts.Lock = &lock.Options{Command: "rm", Wait: c.Duration("lock-wait"), Logger: slog.Default()}
	}
	rep, err := remove.Run(c.Context, b, paths, opts)
	switch {
	case errors.Is(err, remove.ErrNotInCache):
		return withCode(exitNotFound, err)
	case errors.Is(err, remove.ErrReferenced), errors.Is(err, remove.ErrUnreadable), errors.Is(err, lock.ErrLocked):
		return withCode(exitFailure, err)
	case err != nil:
		return err
	}
	for _, r := range rep.Roots {
		fmt.Fprintf(c.App.ErrWriter, "nixbucket: warning: %s is listed by %s %s; removed anyway (the manifests keep naming it, "+
			"gc and verify skip it; a push of that closure uploads it again)\n", r.Path, plural(int64(len(r.Roots)), "root", "roots"), strings.Join(r.Roots, ", "))
	}
	w := c.App.Writer
	if c.Bool("json") {
		return json.NewEncoder(w).Encode(rep)
	}
	verb, nars := "removed", "are condemned: the first gc run a grace from now deletes them"
	if rep.DryRun {
		verb, nars = "would remove", "would be condemned for gc"
	}
	referrer := map[string]bool{}
	for _, p := range rep.Referrers {
		referrer[p] = true
	}
	for _, p := range rep.Removed {
		note := ""
		if referrer[p] {
			note = " (referrer)"
		}
		fmt.Fprintf(w, "%s %s%s\n", verb, p, note)
	}
	_, err = fmt.Fprintf(w, "%s %d %s (%d %s) in %d delete requests; their %d NARs no other path names (%s) %s\n",
		verb, len(rep.Removed), plural(int64(len(rep.Removed)), "path", "paths"),
		len(rep.Referrers), plural(int64(len(rep.Referrers)), "referrer", "referrers"), rep.Batches,
		len(rep.NARs), humanize.IBytes(uint64(rep.NARBytes)), nars)
	return err
}
