package remove

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/narinfo"
)

// hashOf is a fake hash part for a node name: 32 characters.
func hashOf(name string) string { return fmt.Sprintf("%032s", name) }

// graphPlan is a plan over narinfos named by refs: node -> its references.
func graphPlan(refs map[string][]string) *plan {
	pl := &plan{infos: map[string]*narinfo.NarInfo{}, asked: map[string]bool{}}
	for n, rs := range refs {
		ni := &narinfo.NarInfo{StorePath: "/nix/store/" + hashOf(n) + "-" + n}
		for _, r := range rs {
			ni.References = append(ni.References, hashOf(r)+"-"+r)
		}
		pl.infos[hashOf(n)] = ni
	}
	return pl
}

// TestOrder: the paths asked for and their referrers, in layers where
// every referrer of a path is in an earlier layer; self-references are
// not referrers; layers are split in DeleteObjects batches.
func TestOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refs   map[string][]string
		asked  []string
		layers string // layers separated by "|", names by ","
	}{
		{"chain", map[string][]string{"a": {"b"}, "b": {"c"}, "c": nil, "x": nil}, []string{"c"}, "a|b|c"},
		{"diamond", map[string][]string{"top": {"l", "r"}, "l": {"base"}, "r": {"base"}, "base": nil}, []string{"base"}, "top|l,r|base"},
		{"shortcut", map[string][]string{"a": {"b", "c"}, "b": {"c"}, "c": nil}, []string{"c"}, "a|b|c"},
		{"self-reference", map[string][]string{"a": {"a", "b"}, "b": {"b"}, "c": {"c"}}, []string{"b"}, "a|b"},
		{"two asked, one referring to the other", map[string][]string{"a": {"b"}, "b": nil}, []string{"b", "a"}, "a|b"},
		{"unrelated referrers stay", map[string][]string{"a": {"b"}, "b": nil, "c": {"a"}, "d": {"e"}, "e": nil}, []string{"a"}, "c|a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := graphPlan(tc.refs)
			for _, a := range tc.asked {
				pl.asked[hashOf(a)] = true
			}
			var got []string
			for _, layer := range pl.order(pl.withReferrers()) {
				var names []string
				for _, h := range layer {
					names = append(names, strings.TrimLeft(h, "0"))
				}
				got = append(got, strings.Join(names, ","))
			}
			if g := strings.Join(got, "|"); g != tc.layers {
				t.Errorf("layers %q, want %q", g, tc.layers)
			}
		})
	}

	// A layer wider than a DeleteObjects batch takes several.
	refs := map[string][]string{"base": nil}
	for i := range gc.DeleteBatch + 10 {
		refs[fmt.Sprint("n", i)] = []string{"base"}
	}
	pl := graphPlan(refs)
	pl.asked[hashOf("base")] = true
	pl.layers = pl.order(pl.withReferrers())
	var sizes []int
	for _, b := range pl.batches() {
		sizes = append(sizes, len(b))
	}
	if !slices.Equal(sizes, []int{gc.DeleteBatch, 10, 1}) {
		t.Errorf("batches of %v keys, want [%d 10 1]", sizes, gc.DeleteBatch)
	}
}

// TestReferenced: a refusal names the paths asked for that have
// referrers, and the referrers (the first ShownReferrers and a count).
func TestReferenced(t *testing.T) {
	refs := map[string][]string{"a": {"b"}, "b": nil, "c": {"d"}, "d": nil, "e": nil}
	for i := range ShownReferrers + 5 {
		refs[fmt.Sprint("r", i)] = []string{"e"}
	}
	path := func(n string) string { return "/nix/store/" + hashOf(n) + "-" + n }
	for _, tc := range []struct {
		asked []string
		want  []string
	}{
		{[]string{"b"}, []string{"refusing to remove " + path("b") + ": 1 path in the cache refers to it", path("a"), "removes it too"}},
		{[]string{"b", "d"}, []string{"refusing to remove 2 paths (" + path("b") + ", " + path("d") + "): 2 paths in the cache refer to them", path("a"), path("c"), "removes them too"}},
		{[]string{"e"}, []string{fmt.Sprintf("%d paths in the cache refer to it", ShownReferrers+5), "and 5 more;"}},
	} {
		pl := graphPlan(refs)
		for _, a := range tc.asked {
			pl.asked[hashOf(a)] = true
		}
		err := pl.referenced(pl.withReferrers())
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("refusal of %v: %q does not say %q", tc.asked, err, w)
			}
		}
	}
}
