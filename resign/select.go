package resign

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// Selection chooses the narinfos Run re-signs: exactly one of All, Roots
// and Paths.
type Selection struct {
	// All selects every narinfo in the bucket.
	All bool
	// Roots selects the paths of each root's newest manifest (the one
	// with the latest time in its key, what the last push --root NAME
	// recorded); a root with no manifest is an error.
	Roots []string
	// Paths selects these paths: store paths (a path inside one is taken
	// as the store path) or hash parts, as HashPart takes them. One with
	// no narinfo in the cache is listed in Result.Missing.
	Paths []string
}

func (s *Selection) check() error {
	n := 0
	for _, set := range []bool{s.All, len(s.Roots) > 0, len(s.Paths) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("resign: select exactly one of all narinfos, roots or paths")
	}
	for _, name := range s.Roots {
		if err := roots.CheckName(name); err != nil {
			return err
		}
	}
	for _, p := range s.Paths {
		if _, err := HashPart(p); err != nil {
			return err
		}
	}
	return nil
}

// HashPart returns the hash part of arg: a store path's, when arg is an
// absolute path with a store path base name <hash>-<name> below its first
// element (/nix/store/<hash>-<name>[/…]), or arg itself when it is a hash
// part (32 characters of Nix's base-32).
func HashPart(arg string) (string, error) {
	if storepath.IsHashPart(arg) {
		return arg, nil
	}
	if parts := strings.Split(arg, "/"); len(parts) > 2 && parts[0] == "" {
		for _, base := range parts[2:] {
			if storepath.CheckBase(base) == nil {
				return storepath.HashPart(base), nil
			}
		}
	}
	return "", fmt.Errorf("%q is neither a store path nor a store path's hash part", arg)
}

// selected calls fn with the key of every narinfo selected and, when it
// was named (by a path or a manifest) rather than listed, the name its
// absence is reported by.
func (r *resigner) selected(ctx context.Context, fn func(key, named string) error) error {
	sel := r.opts.Select
	switch {
	case sel.All:
		err := r.b.List(ctx, "", func(o s3cache.ObjectInfo) error {
			if _, ok := layout.NarInfoHash(o.Key); ok {
				return fn(o.Key, "")
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing the cache: %w", err)
		}
		return nil
	case len(sel.Roots) > 0:
		paths, err := r.rootPaths(ctx, sel.Roots)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if err := fn(layout.NarInfoKeyOf(p), p); err != nil {
				return err
			}
		}
		return nil
	}
	seen := map[string]bool{}
	for _, p := range sel.Paths {
		h, err := HashPart(p)
		if err != nil {
			return err
		}
		if k := layout.NarInfoKey(h); !seen[k] {
			seen[k] = true
			if err := fn(k, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// rootPaths returns the paths of each root's newest manifest, without
// duplicates, and records the manifests read.
func (r *resigner) rootPaths(ctx context.Context, names []string) ([]string, error) {
	idx, err := roots.List(ctx, r.b)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var paths []string
	for _, name := range names {
		root := idx.Get(name)
		if root == nil || len(root.Manifests) == 0 {
			return nil, fmt.Errorf("root %s has no manifest in the cache (roots list shows the roots)", name)
		}
		key := root.Manifests[0].Key
		m, err := roots.Read(ctx, r.b, key)
		if err != nil {
			return nil, err
		}
		r.log.Debug("signing the paths of a root's newest manifest", "root", name, "manifest", key, "paths", len(m.Paths))
		r.res.Manifests = append(r.res.Manifests, key)
		for _, e := range m.Paths {
			if !seen[e.NarInfo] {
				seen[e.NarInfo] = true
				paths = append(paths, e.Path)
			}
		}
	}
	return paths, nil
}
