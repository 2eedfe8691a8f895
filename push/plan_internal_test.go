package push

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// testPath is a store path whose hash part repeats the c-th nix32
// character.
func testPath(c int, name string) string {
	return "/nix/store/" + strings.Repeat(layout.HashAlphabet[c:c+1], storepath.HashLen) + "-" + name
}

// testGraph builds a graph of the named paths: refs[n] lists what n refers
// to, sizes[n] is its NAR size (default 1). Names not in refs lie outside
// the graph.
func testGraph(refs map[string][]string, sizes map[string]uint64) (*closure.Graph, map[string]string) {
	names := slices.Sorted(func(yield func(string) bool) {
		for n, rs := range refs {
			if !yield(n) {
				return
			}
			for _, r := range rs {
				if _, ok := refs[r]; !ok && !yield(r) {
					return
				}
			}
		}
	})
	names = slices.Compact(names)
	path := map[string]string{}
	for i, n := range names {
		path[n] = testPath(i, n)
	}
	var infos []*store.PathInfo
	for n, rs := range refs {
		info := &store.PathInfo{Path: path[n], NarSize: max(sizes[n], 1)}
		for _, r := range rs {
			info.References = append(info.References, path[r])
		}
		slices.Sort(info.References)
		infos = append(infos, info)
	}
	return closure.Partial(infos), path
}

// TestNewPlan checks what a plan writes and what each narinfo waits for.
func TestNewPlan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		refs    map[string][]string
		sizes   map[string]uint64
		present []string
		// want, by name: missing in order, nars in order, waits,
		// referrers, outside.
		missing, nars, outside []string
		waits                  map[string]int
		referrers              map[string][]string
	}{{
		name:      "a chain, its end present",
		refs:      map[string][]string{"app": {"app", "lib"}, "lib": {"libc"}, "libc": nil},
		present:   []string{"libc"},
		missing:   []string{"lib", "app"},
		nars:      []string{"lib", "app"},
		waits:     map[string]int{"lib": 1, "app": 2},
		referrers: map[string][]string{"lib": {"app"}},
	}, {
		name:      "nothing present: references first",
		refs:      map[string][]string{"app": {"lib", "data"}, "lib": {"data"}, "data": nil},
		missing:   []string{"data", "lib", "app"},
		nars:      []string{"data", "lib", "app"},
		waits:     map[string]int{"data": 1, "lib": 2, "app": 3},
		referrers: map[string][]string{"data": {"lib", "app"}, "lib": {"app"}},
	}, {
		name:      "a partial graph: references outside it",
		refs:      map[string][]string{"app": {"lib", "libc"}},
		missing:   []string{"app"},
		nars:      []string{"app"},
		outside:   []string{"lib", "libc"},
		waits:     map[string]int{"app": 1},
		referrers: map[string][]string{},
	}, {
		name:      "all present",
		refs:      map[string][]string{"app": {"lib"}, "lib": nil},
		present:   []string{"app", "lib"},
		waits:     map[string]int{},
		referrers: map[string][]string{},
	}, {
		name:      "large NARs first, largest first",
		refs:      map[string][]string{"app": {"big", "huge", "lib"}, "big": nil, "huge": nil, "lib": nil},
		sizes:     map[string]uint64{"big": bigNar + 1, "huge": 2 * bigNar},
		missing:   []string{"big", "huge", "lib", "app"},
		nars:      []string{"huge", "big", "lib", "app"},
		waits:     map[string]int{"big": 1, "huge": 1, "lib": 1, "app": 4},
		referrers: map[string][]string{"big": {"app"}, "huge": {"app"}, "lib": {"app"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, path := testGraph(tc.refs, tc.sizes)
			present := map[string]bool{}
			for _, n := range tc.present {
				present[storepath.HashPart(path[n])] = true
			}
			pl := newPlan(g, g.Sorted(), present, nil)
			paths := func(names []string) []string {
				var out []string
				for _, n := range names {
					out = append(out, path[n])
				}
				return out
			}
			want := &plan{order: g.Sorted(), present: present, missing: paths(tc.missing), nars: paths(tc.nars), outside: paths(tc.outside),
				waits: map[string]int{}, referrers: map[string][]string{}}
			for n, w := range tc.waits {
				want.waits[path[n]] = w
				want.narBytes += g.Info(path[n]).NarSize
			}
			for n, rs := range tc.referrers {
				want.referrers[path[n]] = paths(rs)
			}
			if !reflect.DeepEqual(pl, want) {
				t.Errorf("newPlan:\ngot  %+v\nwant %+v", pl, want)
			}
		})
	}
}

// TestPlanOrder carries out plans of random graphs with NARs finishing in
// random order, as the workers do: every narinfo is written only after
// its NAR and the narinfos of its references, and every path missing is
// written.
func TestPlanOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		n := 1 + rng.IntN(20)
		refs := map[string][]string{}
		names := make([]string, n)
		for i := range n {
			names[i] = string(rune('a' + i))
			refs[names[i]] = nil
			for j := range i {
				if rng.IntN(3) == 0 {
					refs[names[i]] = append(refs[names[i]], names[j])
				}
			}
		}
		g, path := testGraph(refs, nil)
		present := map[string]bool{}
		for _, name := range names {
			if rng.IntN(3) == 0 {
				present[storepath.HashPart(path[name])] = true
			}
		}
		pl := newPlan(g, g.Sorted(), present, nil)
		written := map[string]bool{}
		for h := range present {
			written[h] = true
		}
		waits := map[string]int{}
		for m, w := range pl.waits {
			waits[m] = w
		}
		var release func(m string)
		release = func(m string) {
			if waits[m]--; waits[m] > 0 {
				return
			}
			for _, r := range g.Info(m).References {
				if r != m && !written[storepath.HashPart(r)] {
					t.Fatalf("%s written before its reference %s", m, r)
				}
			}
			written[storepath.HashPart(m)] = true
			for _, q := range pl.referrers[m] {
				release(q)
			}
		}
		nars := slices.Clone(pl.nars)
		rng.Shuffle(len(nars), func(i, j int) { nars[i], nars[j] = nars[j], nars[i] })
		for _, m := range nars {
			release(m)
		}
		if len(written) != g.Len() {
			t.Fatalf("%d of %d paths written", len(written), g.Len())
		}
	}
}
