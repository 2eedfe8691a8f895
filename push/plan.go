package push

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// plan is what a push writes and in which order.
//
// The order keeps the closure invariant: a path's narinfo is written only
// after its NAR and after the narinfos of all its references, those of
// the plan (waits, referrers) and those outside the graph, which the
// cache must already have (outside). So every narinfo a reader can see,
// at any instant, has its NAR and its whole closure behind it, whatever
// fails or is killed.
//
// A plan is computed once, from one look at the cache, before anything is
// written, and is not changed after: the workers that carry it out
// (attempt) only follow it, so what is written, and when it may be, is
// decided in one place. A push that must start again under its lock looks
// at the cache again and makes a new plan.
type plan struct {
	// order is every path of the graph, references first.
	order []string
	// present holds the hash parts of the paths of order the cache has.
	present map[string]bool
	// missing are the paths of order the cache lacks, in that order: a
	// NAR and a narinfo each.
	missing []string
	// narBytes is the NAR size of missing.
	narBytes uint64
	// nars is missing in the order the NAR uploads start (narOrder).
	nars []string
	// waits[m] counts what m's narinfo waits for: its NAR and the narinfo
	// of each other path of missing it refers to. referrers[r] lists the
	// paths whose narinfo waits for r's.
	waits     map[string]int
	referrers map[string][]string
	// outside are the references of missing outside the graph, sorted.
	outside []string
	// upstream are the paths of order the cache lacks that the push
	// leaves upstream (Options.SkipSignedBy; upstream.go), with the
	// names of the keys that signed them; they are not in missing.
	// upstreamBytes is their NAR size; upstreamRefs are those the
	// narinfos of missing refer to, sorted.
	upstream      map[string][]string
	upstreamBytes uint64
	upstreamRefs  []string
	// upstreamOutside are the references of outside that the cache lacks
	// and the push leaves upstream too (Options.LocalStore), by path;
	// they are in upstream and upstreamRefs as well.
	upstreamOutside map[string]*store.PathInfo
}

// makePlan looks at the cache (with listing, if given and complete) and
// plans the push of p.g; it fails if a reference outside the graph is
// not in the cache.
func (p *pusher) makePlan(ctx context.Context, listing *Listing) (*plan, error) {
	order := p.g.Sorted()
	present, err := findPresent(ctx, p.b, order, p.metaJobs, p.log, listing)
	if err != nil {
		return nil, err
	}
	pl := newPlan(p.g, order, present, leftUpstream(p.g, order, present, p.opts.SkipSignedBy))
	up, err := p.checkOutside(ctx, pl.outside, listing)
	if err != nil {
		return nil, err
	}
	pl.addOutsideUpstream(up, p.opts.SkipSignedBy)
	return pl, nil
}

// newPlan plans the writes of the paths of order (g topologically sorted)
// whose hash part is not in present, but for those left upstream (by
// path, with their signers), which count as present.
func newPlan(g *closure.Graph, order []string, present map[string]bool, upstream map[string][]string) *plan {
	pl := &plan{order: order, present: present, waits: make(map[string]int), referrers: make(map[string][]string), upstream: upstream}
	inPlan := make(map[string]bool)
	for _, path := range order {
		if _, up := upstream[path]; up {
			pl.upstreamBytes += g.Info(path).NarSize
		} else if !present[storepath.HashPart(path)] {
			pl.missing = append(pl.missing, path)
			inPlan[path] = true
		}
	}
	seen := make(map[string]bool)
	for _, m := range pl.missing {
		info := g.Info(m)
		pl.narBytes += info.NarSize
		pl.waits[m] = 1
		for _, r := range info.References {
			switch {
			case r == m:
			case upstream[r] != nil:
				if !seen[r] {
					seen[r] = true
					pl.upstreamRefs = append(pl.upstreamRefs, r)
				}
			case inPlan[r]:
				pl.waits[m]++
				pl.referrers[r] = append(pl.referrers[r], m)
			case g.Info(r) == nil && !seen[r]:
				seen[r] = true
				pl.outside = append(pl.outside, r)
			}
		}
	}
	slices.Sort(pl.outside)
	slices.Sort(pl.upstreamRefs)
	pl.nars = narOrder(g, pl.missing)
	return pl
}

// narOrder orders the NAR uploads of missing (topologically sorted). NARs
// over bigNar come first, largest first, so the long uploads start first
// (Nix 2.35 starts largest first too); the rest, which upload beside them
// in slots of their own (upload), go in topological order, so that
// narinfos, which must wait for their references' narinfos, can be
// written while NARs still upload.
func narOrder(g *closure.Graph, missing []string) []string {
	nars := slices.Clone(missing)
	slices.SortStableFunc(nars, func(a, b string) int {
		sa, sb := g.Info(a).NarSize, g.Info(b).NarSize
		if sa > bigNar || sb > bigNar {
			return cmp.Compare(sb, sa)
		}
		return 0
	})
	return nars
}

// checkOutside makes sure that the cache has every path of outside (the
// references of a plan outside the graph), so no narinfo is written whose
// closure is incomplete, but for those it leaves upstream: with
// SkipSignedBy and LocalStore, a path the cache lacks whose local
// signatures name a skipped key. It returns those, by path.
func (p *pusher) checkOutside(ctx context.Context, outside []string, listing *Listing) (map[string]*store.PathInfo, error) {
	if len(outside) == 0 {
		return nil, nil
	}
	have, err := findPresent(ctx, p.b, outside, p.metaJobs, p.log, listing)
	if err != nil {
		return nil, err
	}
	var up map[string]*store.PathInfo
	for _, r := range outside {
		if have[storepath.HashPart(r)] {
			continue
		}
		info, err := p.outsideUpstream(ctx, r)
		if err != nil {
			return nil, err
		}
		if info == nil {
			return nil, fmt.Errorf("%s is referenced by the paths pushed but is neither pushed nor in the cache; push its closure (drop --no-recursive)", r)
		}
		if up == nil {
			up = map[string]*store.PathInfo{}
		}
		up[r] = info
	}
	return up, nil
}
