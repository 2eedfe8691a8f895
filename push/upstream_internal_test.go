package push

import (
	"slices"
	"testing"

	"github.com/nixbucket/nixbucket/storepath"
)

// TestPlanUpstream checks which paths a plan leaves upstream: those the
// cache lacks that a skipped key signed locally (the name before ':'),
// not uploaded yet satisfied references; the ones the written narinfos
// refer to are recorded.
func TestPlanUpstream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		refs    map[string][]string
		sigs    map[string][]string
		skip    []string
		present []string
		// want, by name
		missing, upstream, refsUp []string
		waits                     map[string]int
	}{{
		name:     "upstream paths are neither pushed nor waited for",
		refs:     map[string][]string{"app": {"app", "lib", "libc"}, "lib": {"libc"}, "libc": nil},
		sigs:     map[string][]string{"libc": {"cache.nixos.org-1:abc"}, "lib": {"cache.nixos.org-1:def", "own-1:x"}},
		skip:     []string{"cache.nixos.org-1"},
		missing:  []string{"app"},
		upstream: []string{"lib", "libc"},
		refsUp:   []string{"lib", "libc"},
		waits:    map[string]int{"app": 1},
	}, {
		name:     "only the name before ':' counts",
		refs:     map[string][]string{"app": {"lib"}, "lib": nil},
		sigs:     map[string][]string{"lib": {"cache.nixos.org-10:abc", "x:cache.nixos.org-1"}},
		skip:     []string{"cache.nixos.org-1"},
		missing:  []string{"lib", "app"},
		upstream: nil,
		waits:    map[string]int{"lib": 1, "app": 2},
	}, {
		name:     "a path the cache has is present, not upstream",
		refs:     map[string][]string{"app": {"lib"}, "lib": nil},
		sigs:     map[string][]string{"lib": {"u-1:abc"}},
		skip:     []string{"u-1"},
		present:  []string{"lib"},
		missing:  []string{"app"},
		upstream: nil,
		waits:    map[string]int{"app": 1},
	}, {
		name:     "an upstream path no pushed path refers to is not recorded",
		refs:     map[string][]string{"tool": nil, "app": {"lib"}, "lib": nil},
		sigs:     map[string][]string{"tool": {"u-1:abc"}, "app": {"u-2:x"}},
		skip:     []string{"u-1", "u-2"},
		missing:  []string{"lib"},
		upstream: []string{"app", "tool"},
		refsUp:   nil,
		waits:    map[string]int{"lib": 1},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, path := testGraph(tc.refs, nil)
			for n, sigs := range tc.sigs {
				g.Info(path[n]).Signatures = sigs
			}
			present := map[string]bool{}
			for _, n := range tc.present {
				present[storepath.HashPart(path[n])] = true
			}
			order := g.Sorted()
			pl := newPlan(g, order, present, leftUpstream(g, order, present, tc.skip))
			names := func(ps []string) []string {
				var out []string
				for _, p := range ps {
					for n, q := range path {
						if q == p {
							out = append(out, n)
						}
					}
				}
				return out
			}
			var up []string
			for p := range pl.upstream {
				up = append(up, p)
			}
			slices.Sort(up)
			if got := names(pl.missing); !slices.Equal(got, tc.missing) {
				t.Errorf("missing = %v, want %v", got, tc.missing)
			}
			if got := names(up); !slices.Equal(got, tc.upstream) {
				t.Errorf("upstream = %v, want %v", got, tc.upstream)
			}
			if got := names(pl.upstreamRefs); !slices.Equal(got, tc.refsUp) {
				t.Errorf("upstreamRefs = %v, want %v", got, tc.refsUp)
			}
			if len(pl.outside) != 0 {
				t.Errorf("outside = %v, want none", names(pl.outside))
			}
			for n, w := range tc.waits {
				if pl.waits[path[n]] != w {
					t.Errorf("waits[%s] = %d, want %d", n, pl.waits[path[n]], w)
				}
			}
			var bytes uint64
			for _, n := range tc.upstream {
				bytes += g.Info(path[n]).NarSize
			}
			if pl.upstreamBytes != bytes {
				t.Errorf("upstreamBytes = %d, want %d", pl.upstreamBytes, bytes)
			}
		})
	}
}
