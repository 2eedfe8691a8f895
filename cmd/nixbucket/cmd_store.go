package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/nar"
	"github.com/nixbucket/nixbucket/redact"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

func narCommand() *cli.Command {
	return &cli.Command{
		Name:      "nar",
		Usage:     "write the NAR of a store path to stdout, like nix-store --dump",
		UsageText: "nixbucket nar [--check] PATH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "check", Usage: "fail unless the NAR matches the NarHash and NarSize the store records"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("nar takes one store path, got %d arguments", c.NArg())
			}
			ctx := c.Context
			p, err := resolvePaths(storepath.DefaultDir(), c.Args().Slice())
			if err != nil {
				return err
			}
			// A path inside a store path is dumped as nix-store --dump does:
			// that file or directory alone.
			_, inside, _ := store.ResolveInside(storepath.DefaultDir(), c.Args().First())
			if inside != p[0] {
				if c.Bool("check") {
					return usageErrorf("--check needs a store path: the store records no hash of %s inside %s", inside, p[0])
				}
				p[0] = inside
			}
			// The dumper buffers its output: a buffer here would copy it
			// once more. A NAR is data, not text to redact.
			w := redact.Unwrap(c.App.Writer)
			if c.Bool("check") {
				s, err := openStore(ctx)
				if err != nil {
					return err
				}
				defer s.Close()
				info, err := s.QueryPathInfo(ctx, p[0])
				if err != nil {
					return withCode(exitNotFound, err)
				}
				if err := nar.VerifyPath(ctx, w, info.Path, info.NarHash, info.NarSize); err != nil {
					return err
				}
			} else if _, err := nar.Dump(ctx, w, p[0]); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return withCode(exitNotFound, fmt.Errorf("%s does not exist", p[0]))
				}
				return err
			}
			return nil
		},
	}
}

func pathInfoCommand() *cli.Command {
	return &cli.Command{
		Name:      "path-info",
		Usage:     "show what the Nix store records about store paths",
		UsageText: "nixbucket path-info [--json] [-r|--recursive] [--include-outputs] PATH...",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON list with the fields of nix path-info --json"},
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "the whole closure of the paths"},
			&cli.BoolFlag{Name: "include-outputs", Usage: "with -r: also the valid outputs of every .drv, and their closures"},
		},
		Action: pathInfo,
	}
}

func pathInfo(c *cli.Context) error {
	if c.NArg() == 0 {
		return usageErrorf("path-info needs at least one store path")
	}
	if c.Bool("include-outputs") && !c.Bool("recursive") {
		return usageErrorf("--include-outputs needs -r: the outputs and their closures are part of the closure")
	}
	ctx := c.Context
	s, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	roots, err := resolvePaths(s.Dir(), c.Args().Slice())
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.App.Writer)
	if c.Bool("recursive") && !c.Bool("json") {
		// A listing needs the paths alone, which the database gives cheaper.
		paths, err := closure.Paths(ctx, s, roots, closure.Options{IncludeOutputs: c.Bool("include-outputs")})
		if err != nil {
			return err
		}
		for _, p := range paths {
			fmt.Fprintln(w, p)
		}
		return w.Flush()
	}
	g, err := closureOf(ctx, s, roots, c.Bool("recursive"), c.Bool("include-outputs"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		list := make([]pathInfoJSON, 0, g.Len())
		for _, p := range g.Paths() {
			list = append(list, toJSON(g.Info(p)))
		}
		enc := json.NewEncoder(w)
		if err := enc.Encode(list); err != nil {
			return err
		}
	} else {
		for _, p := range g.Paths() {
			fmt.Fprintln(w, p)
		}
	}
	return w.Flush()
}

// closureOf returns the closure of roots when recursive, else a graph of
// the roots alone (which must be valid either way).
func closureOf(ctx context.Context, s store.Store, roots []string, recursive, includeOutputs bool) (*closure.Graph, error) {
	if recursive {
		g, err := closure.Compute(ctx, s, roots, closure.Options{IncludeOutputs: includeOutputs})
		return g, err
	}
	infos := make([]*store.PathInfo, 0, len(roots))
	for _, r := range roots {
		info, err := s.QueryPathInfo(ctx, r)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return closure.Partial(infos), nil
}

// openStore opens the local Nix store as Nix would find it, logging its
// choice of back end at debug level (--verbose). An unsupported NIX_REMOTE
// is a usage error; any other failure means no store: not found.
func openStore(ctx context.Context) (store.Store, error) {
	s, err := store.Open(ctx, store.WithLogger(slog.Default()))
	switch {
	case errors.Is(err, store.ErrUnsupportedStore):
		return nil, withCode(exitUsage, err)
	case err != nil:
		return nil, withCode(exitNotFound, err)
	}
	return s, nil
}

// resolvePaths turns arguments (result links, paths inside store paths)
// into store paths.
func resolvePaths(dir string, args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for _, a := range args {
		p, err := store.Resolve(dir, a)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if isInstallable(a) {
					return nil, withCode(exitNotFound, fmt.Errorf("%s is an installable, not a path: build it first (%s), then give its ./result",
						a, shellQuote("nix", "build", a)))
				}
				return nil, withCode(exitNotFound, fmt.Errorf("%s does not exist", a))
			}
			return nil, withCode(exitNotFound, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// isInstallable reports whether an argument that names no file is a Nix
// installable, a flake reference with an attribute (nixpkgs#hello,
// .#default, github:owner/repo#pkg), that nix build would take.
func isInstallable(arg string) bool {
	ref, attr, ok := strings.Cut(arg, "#")
	return ok && ref != "" && attr != "" && !strings.ContainsAny(attr, "/ ")
}

// pathInfoJSON is one element of `nix path-info --json` as Nix 2.8 prints it.
type pathInfoJSON struct {
	Path             string   `json:"path"`
	NarHash          string   `json:"narHash"`
	NarSize          uint64   `json:"narSize"`
	References       []string `json:"references"`
	Deriver          string   `json:"deriver,omitempty"`
	RegistrationTime int64    `json:"registrationTime,omitempty"`
	Ultimate         bool     `json:"ultimate,omitempty"`
	Signatures       []string `json:"signatures,omitempty"`
	CA               string   `json:"ca,omitempty"`
}

func toJSON(i *store.PathInfo) pathInfoJSON {
	refs := i.References
	if refs == nil {
		refs = []string{}
	}
	var reg int64
	if !i.RegistrationTime.IsZero() {
		reg = i.RegistrationTime.Unix()
	}
	return pathInfoJSON{
		Path:             i.Path,
		NarHash:          i.NarHash.Format(nixhash.SRI, true),
		NarSize:          i.NarSize,
		References:       refs,
		Deriver:          i.Deriver,
		RegistrationTime: reg,
		Ultimate:         i.Ultimate,
		Signatures:       i.Signatures,
		CA:               i.CA,
	}
}
