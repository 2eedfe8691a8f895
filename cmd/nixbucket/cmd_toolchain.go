package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/nixbucket/nixbucket/storepath"
	"github.com/urfave/cli/v2"
)

// toolchainCommand is `nixbucket toolchain refresh`, the replacement of
// the refresh_toolchain and refresh_cache scripts.
func toolchainCommand() *cli.Command {
	return &cli.Command{
		Name:  "toolchain",
		Usage: "build a Nix expression and keep its closure in the cache under a root",
		Subcommands: []*cli.Command{{
			Name:  "refresh",
			Usage: "nix-build the expression, push the runtime closure of the results and record the root (--derivations: push the build-time closure, building nothing)",
			UsageText: "nixbucket toolchain refresh --cache URL [-f nix/toolchain.nix] [-A ATTR]... [--root toolchain] [--derivations]\n" +
				"    [--nix-option K=V]...\n" + pushFlagsUsage,
			Flags: append([]cli.Flag{
				cacheFlag(),
				&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Value: "nix/toolchain.nix", Usage: "the Nix expression `FILE`"},
				&cli.StringSliceFlag{Name: "attr", Aliases: []string{"A"}, Usage: "an `ATTR` of the expression to build (repeatable; default: all of it)"},
				&cli.StringFlag{Name: "root", Value: "toolchain", Usage: "record the pushed closure as root `NAME`"},
				&cli.BoolFlag{Name: "derivations", Usage: "nix-instantiate instead: push the .drv closure with the outputs that exist (--include-outputs), build nothing"},
				&cli.StringSliceFlag{Name: "nix-option", Usage: "pass --option K V to nix-build / nix-instantiate (`K=V`, repeatable)"},
			}, pushFlags()...),
			Action: toolchainRefreshAction,
		}},
	}
}

func toolchainRefreshAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("toolchain refresh takes no arguments (got %q); name attributes with -A", c.Args().First())
	}
	nixArgs, err := nixOptions(c.StringSlice("nix-option"))
	if err != nil {
		return err
	}
	ps, err := newPushSetup(c)
	if err != nil {
		return err
	}
	// Open the bucket first: bad credentials fail before a long build.
	b, err := openBucket(c.Context, ps.url)
	if err != nil {
		return err
	}
	tool, verb := "nix-build", "building"
	args := []string{c.String("file"), "--no-out-link"}
	if c.Bool("derivations") {
		tool, verb = "nix-instantiate", "instantiating"
		args = args[:1]
	}
	for _, a := range c.StringSlice("attr") {
		args = append(args, "-A", a)
	}
	paths, err := runNix(c.Context, c, tool, append(args, nixArgs...))
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, c.String("file"), err)
	}
	if len(paths) == 0 {
		return fmt.Errorf("%s %s: %s printed no store path", verb, c.String("file"), tool)
	}
	tops, err := resolvePaths(storepath.DefaultDir(), paths)
	if err != nil {
		return err
	}
	return pushClosure(c, ps, b, nil, tops, true, c.Bool("derivations"))
}

// nixOptions turns --nix-option K=V values into nix's --option K V.
func nixOptions(kvs []string) ([]string, error) {
	var out []string
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--nix-option %q: want NAME=VALUE", kv)
		}
		out = append(out, "--option", k, v)
	}
	return out, nil
}

// runNix runs a Nix command with its progress on c.App.ErrWriter and
// returns the store paths it prints, one per line.
func runNix(ctx context.Context, c *cli.Context, name string, args []string) ([]string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, c.App.ErrWriter
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return nil, fmt.Errorf("%s failed with exit status %d (its messages are above)", name, ee.ExitCode())
		case errors.Is(err, exec.ErrNotFound):
			return nil, withCode(exitNotFound, fmt.Errorf("%s not found on PATH: install Nix", name))
		}
		return nil, fmt.Errorf("running %s: %w", name, err)
	}
	return strings.Fields(stdout.String()), nil
}
