// Package closure computes reference closures of Nix store paths: the runtime
// closure (`nix-store -qR`), the closure with outputs (`nix-store -qR
// --include-outputs`: for every .drv reached, each valid output and its
// closure, as Store::computeFSClosure in src/libstore/misc.cc), and a
// topological order with references before referrers.
package closure

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/store"
)

// Querier is the part of a store the closure walk needs.
type Querier interface {
	QueryPathInfo(ctx context.Context, path string) (*store.PathInfo, error)
	QueryValidPaths(ctx context.Context, paths []string) ([]string, error)
	QueryDerivationOutputs(ctx context.Context, drvPath string) (map[string]string, error)
}

// ClosureQuerier is implemented by stores that compute a runtime closure
// in one query (the SQLite back end); Compute uses it when available.
type ClosureQuerier interface {
	QueryClosure(ctx context.Context, roots []string) ([]*store.PathInfo, error)
}

// ClosurePathsQuerier is implemented by stores that list a runtime closure's
// paths in one query, cheaper than its path infos (the SQLite back end).
type ClosurePathsQuerier interface {
	QueryClosurePaths(ctx context.Context, roots []string) ([]string, error)
}

// Paths returns the paths of the closure of roots that Compute would
// return, sorted, without their path infos where the store can list them
// more cheaply (ClosurePathsQuerier).
func Paths(ctx context.Context, q Querier, roots []string, opts Options) ([]string, error) {
	pq, ok := q.(ClosurePathsQuerier)
	if !ok {
		g, err := Compute(ctx, q, roots, opts)
		if err != nil {
			return nil, err
		}
		return g.Paths(), nil
	}
	seen, err := walkBulk(ctx, q, roots, opts, pq.QueryClosurePaths)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// Options tune a closure walk.
type Options struct {
	// IncludeOutputs adds, for every .drv in the closure, each of its outputs
	// that is valid, and their closures.
	IncludeOutputs bool
	// Jobs bounds the store queries in flight; 0 means 8.
	Jobs int
}

// Graph is a closed set of store paths with their path info.
type Graph struct {
	infos map[string]*store.PathInfo
}

// Compute walks the closure of roots breadth first, querying each level of
// the walk in parallel. Every root must be a valid store path.
func Compute(ctx context.Context, q Querier, roots []string, opts Options) (*Graph, error) {
	if cq, ok := q.(ClosureQuerier); ok {
		return computeBulk(ctx, q, cq, roots, opts)
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 8
	}
	g := &Graph{infos: make(map[string]*store.PathInfo)}
	seen := make(map[string]bool)
	var frontier []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			frontier = append(frontier, p)
		}
	}
	for _, r := range roots {
		add(r)
	}
	for len(frontier) > 0 {
		level := frontier
		frontier = nil
		infos := make([]*store.PathInfo, len(level))
		outputs := make([][]string, len(level))
		eg, ectx := errgroup.WithContext(ctx)
		eg.SetLimit(jobs)
		for i, p := range level {
			eg.Go(func() error {
				info, err := q.QueryPathInfo(ectx, p)
				if err != nil {
					return fmt.Errorf("querying %s: %w", p, err)
				}
				infos[i] = info
				if opts.IncludeOutputs && strings.HasSuffix(p, ".drv") {
					outs, err := validOutputs(ectx, q, p)
					if err != nil {
						return err
					}
					outputs[i] = outs
				}
				return nil
			})
		}
		if err := eg.Wait(); err != nil {
			return nil, err
		}
		for i, info := range infos {
			g.infos[level[i]] = info
			for _, r := range info.References {
				add(r)
			}
			for _, o := range outputs[i] {
				add(o)
			}
		}
	}
	return g, nil
}

// computeBulk computes the closure with whole-closure queries (walkBulk).
func computeBulk(ctx context.Context, q Querier, cq ClosureQuerier, roots []string, opts Options) (*Graph, error) {
	g := &Graph{infos: make(map[string]*store.PathInfo)}
	_, err := walkBulk(ctx, q, roots, opts, func(ctx context.Context, next []string) ([]string, error) {
		infos, err := cq.QueryClosure(ctx, next)
		paths := make([]string, len(infos))
		for i, info := range infos {
			paths[i] = info.Path
			if g.infos[info.Path] == nil {
				g.infos[info.Path] = info
			}
		}
		return paths, err
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// walkBulk walks a closure with whole-closure queries: the closure of the
// roots, then (with IncludeOutputs) the closure of the valid outputs of
// the .drv files found, until nothing new appears. query returns the
// paths of the closure of its arguments; walkBulk returns them all.
func walkBulk(ctx context.Context, q Querier, roots []string, opts Options, query func(context.Context, []string) ([]string, error)) (map[string]bool, error) {
	seen := make(map[string]bool)
	for next := slices.Clone(roots); len(next) > 0; {
		paths, err := query(ctx, next)
		if err != nil {
			return nil, err
		}
		next = next[:0]
		for _, p := range paths {
			if seen[p] {
				continue
			}
			seen[p] = true
			if !opts.IncludeOutputs || !strings.HasSuffix(p, ".drv") {
				continue
			}
			outs, err := validOutputs(ctx, q, p)
			if err != nil {
				return nil, err
			}
			for _, o := range outs {
				if !seen[o] {
					next = append(next, o)
				}
			}
		}
	}
	return seen, nil
}

// validOutputs lists the outputs of drv that are valid in the store, sorted.
func validOutputs(ctx context.Context, q Querier, drv string) ([]string, error) {
	m, err := q.QueryDerivationOutputs(ctx, drv)
	if err != nil {
		return nil, fmt.Errorf("querying outputs of %s: %w", drv, err)
	}
	paths := make([]string, 0, len(m))
	for _, p := range m {
		if p != "" {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	if len(paths) == 0 {
		return nil, nil
	}
	valid, err := q.QueryValidPaths(ctx, paths)
	if err != nil {
		return nil, fmt.Errorf("querying outputs of %s: %w", drv, err)
	}
	return valid, nil
}

// FromInfos builds a graph from path infos already known; every reference
// must be among them.
func FromInfos(infos []*store.PathInfo) (*Graph, error) {
	g := &Graph{infos: make(map[string]*store.PathInfo, len(infos))}
	for _, i := range infos {
		g.infos[i.Path] = i
	}
	for _, i := range infos {
		for _, r := range i.References {
			if g.infos[r] == nil {
				return nil, fmt.Errorf("%s refers to %s, which is not in the graph", i.Path, r)
			}
		}
	}
	return g, nil
}

// Len is the number of paths in the graph.
func (g *Graph) Len() int { return len(g.infos) }

// Info returns the path info of p, or nil when p is not in the graph.
func (g *Graph) Info(p string) *store.PathInfo { return g.infos[p] }

// Paths returns the paths of the graph in lexical order.
func (g *Graph) Paths() []string {
	ps := make([]string, 0, len(g.infos))
	for p := range g.infos {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// NarSize is the sum of the NAR sizes of the graph's paths.
func (g *Graph) NarSize() uint64 {
	var n uint64
	for _, i := range g.infos {
		n += i.NarSize
	}
	return n
}

// Sorted returns the paths in topological order: every path comes after all
// the paths it refers to (self-references aside). Ties break lexically, so
// the order is deterministic. References outside the graph are ignored.
func (g *Graph) Sorted() []string {
	out := make([]string, 0, len(g.infos))
	state := make(map[string]uint8, len(g.infos)) // 1 visiting, 2 done
	// Iterative depth-first post-order, to survive deep chains.
	type frame struct {
		path string
		refs []string
		next int
	}
	for _, root := range g.Paths() {
		if state[root] != 0 {
			continue
		}
		stack := []frame{{path: root, refs: g.infos[root].References}}
		state[root] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next < len(top.refs) {
				r := top.refs[top.next]
				top.next++
				if r == top.path || g.infos[r] == nil || state[r] != 0 {
					continue
				}
				state[r] = 1
				stack = append(stack, frame{path: r, refs: g.infos[r].References})
				continue
			}
			state[top.path] = 2
			out = append(out, top.path)
			stack = stack[:len(stack)-1]
		}
	}
	return out
}

// Partial builds a graph of the given paths alone, whose references may lie
// outside it (e.g. a push with --no-recursive).
func Partial(infos []*store.PathInfo) *Graph {
	g := &Graph{infos: make(map[string]*store.PathInfo, len(infos))}
	for _, i := range infos {
		g.infos[i.Path] = i
	}
	return g
}
