package remove

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/storepath"
)

// plan is what Run removes, in order.
type plan struct {
	infos    map[string]*narinfo.NarInfo // every narinfo in the cache, by hash part
	asked    map[string]bool             // the hash parts asked for
	layers   [][]string                  // hash parts to remove: every referrer in an earlier layer
	listings []string                    // the .ls keys of the removed paths that exist
	nars     []string                    // the NAR keys no narinfo left names
	narBytes int64
	roots    []RootUse
}

// newPlan resolves args in what gc.Inspect read and plans their removal.
func newPlan(p *gc.Plan, args []string, withReferrers bool) (*plan, error) {
	infos := map[string]*narinfo.NarInfo{}
	var unread []string
	for key := range p.Objects {
		h, ok := layout.NarInfoHash(key)
		if !ok {
			continue
		}
		if ni := p.NarInfos[key]; ni != nil {
			infos[h] = ni
		} else {
			unread = append(unread, key)
		}
	}
	if len(unread) > 0 {
		slices.Sort(unread)
		return nil, fmt.Errorf("cannot read %s, which might refer to a path being removed; fix or delete %s (nixbucket verify lists such faults): %w",
			listed(unread, 5), plural(len(unread), "it", "them"), ErrUnreadable)
	}
	pl := &plan{infos: infos, asked: map[string]bool{}}
	if err := pl.resolve(args); err != nil {
		return nil, err
	}
	remove := pl.withReferrers()
	if !withReferrers && len(remove) > len(pl.asked) {
		return nil, pl.referenced(remove)
	}
	pl.layers = pl.order(remove)
	pl.collect(p, remove)
	return pl, nil
}

// resolve finds the narinfo of each arg: a full store path, a base name
// (<hash>-<name>) or a hash part. Every arg the cache does not have is
// named in one error.
func (pl *plan) resolve(args []string) error {
	var missing []string
	for _, arg := range args {
		h, err := pl.find(arg)
		if err != nil {
			return err
		}
		if h == "" {
			missing = append(missing, arg)
			continue
		}
		pl.asked[h] = true
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %w; nothing removed", strings.Join(missing, ", "), ErrNotInCache)
	}
	return nil
}

// find returns arg's hash part if the cache has its narinfo (under that
// store path, when arg names one), else "".
func (pl *plan) find(arg string) (string, error) {
	if storepath.IsHashPart(arg) {
		if pl.infos[arg] == nil {
			return "", nil
		}
		return arg, nil
	}
	if strings.Contains(arg, "/") && !path.IsAbs(arg) {
		return "", fmt.Errorf("%w: %q is neither an absolute store path, a base name nor a hash part", storepath.ErrInvalid, arg)
	}
	base := storepath.Base(path.Clean(arg))
	if err := storepath.CheckBase(base); err != nil {
		return "", err
	}
	h := storepath.HashPart(base)
	ni := pl.infos[h]
	switch {
	case ni == nil, storepath.Base(ni.StorePath) != base,
		path.IsAbs(arg) && path.Clean(arg) != ni.StorePath:
		return "", nil
	}
	return h, nil
}

// withReferrers returns the hash parts asked for and all their referrers,
// transitively.
func (pl *plan) withReferrers() map[string]bool {
	referrers := map[string][]string{}
	for h, ni := range pl.infos {
		for _, ref := range storepath.HashParts(ni.References) {
			if ref != h {
				referrers[ref] = append(referrers[ref], h)
			}
		}
	}
	out := map[string]bool{}
	var queue []string
	for h := range pl.asked {
		out[h] = true
		queue = append(queue, h)
	}
	for len(queue) > 0 {
		h := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, r := range referrers[h] {
			if !out[r] {
				out[r] = true
				queue = append(queue, r)
			}
		}
	}
	return out
}

// order splits the hash parts to remove into layers: a layer is every
// one left that none left refers to (Kahn's algorithm), each sorted by
// store path.
func (pl *plan) order(remove map[string]bool) [][]string {
	referrers := map[string]int{} // referrers left, among those removed
	for h := range remove {
		for _, ref := range storepath.HashParts(pl.infos[h].References) {
			if ref != h && remove[ref] {
				referrers[ref]++
			}
		}
	}
	left := maps.Clone(remove)
	var out [][]string
	var layer []string
	for h := range left {
		if referrers[h] == 0 {
			layer = append(layer, h)
		}
	}
	for len(left) > 0 {
		if len(layer) == 0 { // a cycle cannot happen in Nix; remove the rest together
			for h := range left {
				layer = append(layer, h)
			}
		}
		slices.SortFunc(layer, func(a, b string) int { return strings.Compare(pl.infos[a].StorePath, pl.infos[b].StorePath) })
		for _, h := range layer {
			delete(left, h)
		}
		var next []string
		for _, h := range layer {
			for _, ref := range storepath.HashParts(pl.infos[h].References) {
				if ref == h || !left[ref] {
					continue
				}
				if referrers[ref]--; referrers[ref] == 0 {
					next = append(next, ref)
				}
			}
		}
		out = append(out, layer)
		layer = next
	}
	return out
}

// collect finds the listings, the NARs left unnamed and the roots of the
// paths to remove.
func (pl *plan) collect(p *gc.Plan, remove map[string]bool) {
	named := map[string]bool{}
	unnamed := map[string]bool{}
	for h, ni := range pl.infos {
		if remove[h] {
			unnamed[ni.URL] = true
			if _, ok := p.Objects[layout.ListingKey(h)]; ok {
				pl.listings = append(pl.listings, layout.ListingKey(h))
			}
		} else {
			named[ni.URL] = true
		}
	}
	slices.Sort(pl.listings)
	for key := range unnamed {
		if o, ok := p.Objects[key]; ok && !named[key] {
			pl.nars = append(pl.nars, key)
			pl.narBytes += o.Size
		}
	}
	slices.Sort(pl.nars)
	listedBy := map[string][]string{}
	for _, m := range p.Manifests {
		for _, e := range m.Paths {
			if remove[storepath.HashPart(e.Path)] && pl.infos[storepath.HashPart(e.Path)].StorePath == e.Path {
				listedBy[e.Path] = append(listedBy[e.Path], m.Name)
			}
		}
	}
	for sp, names := range listedBy {
		slices.Sort(names)
		pl.roots = append(pl.roots, RootUse{Path: sp, Roots: slices.Compact(names)})
	}
	slices.SortFunc(pl.roots, func(a, b RootUse) int { return strings.Compare(a.Path, b.Path) })
}

// report is the plan's report, before any deletion.
func (pl *plan) report(dryRun bool) *Report {
	rep := &Report{DryRun: dryRun, Removed: []string{}, Referrers: []string{}, Roots: pl.roots, NARs: pl.nars, NARBytes: pl.narBytes}
	if rep.Roots == nil {
		rep.Roots = []RootUse{}
	}
	if rep.NARs == nil {
		rep.NARs = []string{}
	}
	for _, layer := range pl.layers {
		for _, h := range layer {
			sp := pl.infos[h].StorePath
			rep.Removed = append(rep.Removed, sp)
			if !pl.asked[h] {
				rep.Referrers = append(rep.Referrers, sp)
			}
		}
	}
	rep.Batches = len(pl.batches())
	return rep
}

// listed names the first n of items and counts the rest.
func listed(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// plural returns one or many by n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
