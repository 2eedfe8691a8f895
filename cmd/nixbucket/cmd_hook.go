package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/derivation"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/queue"
	"github.com/nixbucket/nixbucket/storepath"
)

// hookName is the name under which nixbucket acts as `nixbucket hook`:
// Nix's post-build-hook is a program run without arguments, so a symlink
// nixbucket-hook -> nixbucket is the whole setup.
const hookName = "nixbucket-hook"

// hookPrefix starts every line the hook writes, so that it stands out in a
// build's log.
const hookPrefix = "nixbucket hook: "

// hookArgs turns a run as nixbucket-hook (by argv[0]) into `nixbucket hook`.
func hookArgs(args []string) []string {
	if len(args) > 0 && strings.TrimSuffix(filepath.Base(args[0]), ".exe") == hookName {
		return append([]string{args[0], "hook"}, args[1:]...)
	}
	return args
}

func hookCommand() *cli.Command {
	return &cli.Command{
		Name:  "hook",
		Usage: "Nix's post-build-hook: queue a build's outputs for `nixbucket watch` (no network, milliseconds)",
		UsageText: `nixbucket hook [--queue FILE]

Run by Nix after each build, with DRV_PATH and OUT_PATHS in its environment
(in nix.conf: post-build-hook = /usr/local/bin/nixbucket-hook, a symlink to
nixbucket, since Nix passes no arguments). It adds the outputs to the queue
(OUT_PATHS, or the derivation's outputs when Nix leaves it empty, as Nix 2.8
does) and returns. It never fails a build for a queue problem: a full disk,
an unwritable or corrupt queue or an unreadable derivation is one line on
stderr (in the build's log) and exit 0. Only a run outside a hook (no
DRV_PATH) exits non-zero.`,
		Flags: []cli.Flag{queueFlag()},
		Action: func(c *cli.Context) error {
			drv, ok := os.LookupEnv("DRV_PATH")
			if !ok {
				return usageErrorf("DRV_PATH is not set: `nixbucket hook` is run by Nix as its post-build-hook (see nixbucket hook --help)")
			}
			if c.NArg() > 0 {
				return usageErrorf("hook takes no arguments (Nix gives it DRV_PATH and OUT_PATHS)")
			}
			n, err := runHook(c.Context, c.String("queue"), drv, os.Getenv("OUT_PATHS"))
			if err != nil {
				// A hook that exits non-zero fails the build: say it, in
				// one line, and let the build stand.
				what := "nothing queued"
				if n > 0 {
					what = fmt.Sprintf("%d other %s queued", n, plural(int64(n), "path", "paths"))
				}
				fmt.Fprintf(c.App.ErrWriter, "%s%s (%s; the build is not affected)\n", hookPrefix, oneLine(err), what)
				return nil
			}
			if c.Bool("verbose") {
				fmt.Fprintf(c.App.ErrWriter, "%squeued %d paths of %s\n", hookPrefix, n, drv)
			}
			return nil
		},
	}
}

// queueFlag is --queue, defaulting to queue.DefaultPath.
func queueFlag() cli.Flag {
	return &cli.StringFlag{Name: "queue", Usage: "the queue `FILE` (default: $NIXBUCKET_QUEUE, /var/lib/nixbucket/queue.db for root, else $XDG_STATE_HOME/nixbucket/queue.db)", EnvVars: []string{queue.EnvVar}}
}

// queuePath is the queue file named by file (--queue), else the default.
func queuePath(file string) (string, error) {
	if file != "" {
		return file, nil
	}
	return queue.DefaultPath()
}

// runHook queues the outputs of drv, out (space separated) or, if it is
// empty, the derivation's outputs, and says how many it queued (also with
// an error, when only some were). Any error is one the hook survives.
func runHook(ctx context.Context, file, drv, out string) (n int, err error) {
	defer func() {
		// Nothing the hook does may fail the build, not even a bug.
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	paths := strings.Fields(out)
	if len(paths) == 0 {
		if paths, err = drvOutputs(drv); err != nil {
			return 0, err
		}
	}
	var bad []string
	dir := storepath.DefaultDir()
	paths = slices.DeleteFunc(paths, func(p string) bool {
		if err := storepath.Check(dir, p); err != nil {
			bad = append(bad, p)
			return true
		}
		return false
	})
	var errBad error
	if len(bad) > 0 {
		errBad = fmt.Errorf("not store paths in %s, not queued: %q", dir, bad)
		if len(paths) == 0 {
			return 0, errBad
		}
	}
	path, err := queuePath(file)
	if err != nil {
		return 0, err
	}
	q, err := queue.Open(ctx, path)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	if err := q.Add(ctx, drv, paths); err != nil {
		return 0, err
	}
	return len(paths), errors.Join(q.Close(), errBad)
}

// drvOutputs reads the output paths of the derivation file drv.
func drvOutputs(drv string) ([]string, error) {
	if drv == "" {
		return nil, errors.New("OUT_PATHS and DRV_PATH are empty: nothing to queue")
	}
	data, err := os.ReadFile(drv)
	if err != nil {
		return nil, fmt.Errorf("OUT_PATHS is empty and the derivation is unreadable: %w", err)
	}
	paths, err := parseDrvOutputs(data)
	if err != nil {
		return nil, fmt.Errorf("OUT_PATHS is empty and derivation %s does not parse: %w", drv, err)
	}
	return paths, nil
}

// parseDrvOutputs returns the output paths of a derivation in ATerm form,
// sorted by output name; an output without a path (content-addressed,
// not yet known) is an error.
func parseDrvOutputs(data []byte) (paths []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			paths, err = nil, fmt.Errorf("malformed derivation: %v", r)
		}
	}()
	d, err := derivation.ReadDerivation(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(d.Outputs))
	for name := range d.Outputs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := d.Outputs[name].Path
		if p == "" {
			return nil, fmt.Errorf("output %q has no path (a content-addressed derivation)", name)
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil, errors.New("no outputs")
	}
	return paths, nil
}

// oneLine is err's text on one line.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
}
