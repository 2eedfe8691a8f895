package closure_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/store"
)

// memQuerier is a table-driven store for unit tests of the walk itself; the
// differential tests against real Nix are in nix_test.go.
type memQuerier struct {
	infos   map[string]*store.PathInfo
	outputs map[string]map[string]string
}

func (m memQuerier) QueryPathInfo(_ context.Context, p string) (*store.PathInfo, error) {
	if i, ok := m.infos[p]; ok {
		return i, nil
	}
	return nil, fmt.Errorf("%s: %w", p, store.ErrNotValid)
}

func (m memQuerier) QueryValidPaths(_ context.Context, ps []string) ([]string, error) {
	var v []string
	for _, p := range ps {
		if _, ok := m.infos[p]; ok {
			v = append(v, p)
		}
	}
	return v, nil
}

func (m memQuerier) QueryDerivationOutputs(_ context.Context, drv string) (map[string]string, error) {
	return m.outputs[drv], nil
}

func graph(edges map[string][]string) memQuerier {
	m := memQuerier{infos: map[string]*store.PathInfo{}, outputs: map[string]map[string]string{}}
	for p, refs := range edges {
		m.infos[p] = &store.PathInfo{Path: p, References: refs, NarSize: 1}
	}
	return m
}

func TestCompute(t *testing.T) {
	g := graph(map[string][]string{
		"/s/a":     {"/s/b", "/s/a"},
		"/s/b":     {"/s/c"},
		"/s/c":     nil,
		"/s/x.drv": {"/s/c"},
		"/s/x":     {"/s/b"},
		"/s/y":     nil,
	})
	g.outputs["/s/x.drv"] = map[string]string{"out": "/s/x", "dev": "/s/x-dev-not-built"}
	tests := []struct {
		name  string
		roots []string
		opts  closure.Options
		want  []string
	}{
		{"leaf", []string{"/s/c"}, closure.Options{}, []string{"/s/c"}},
		{"self reference", []string{"/s/a"}, closure.Options{}, []string{"/s/a", "/s/b", "/s/c"}},
		{"drv without outputs", []string{"/s/x.drv"}, closure.Options{}, []string{"/s/c", "/s/x.drv"}},
		{"drv with outputs", []string{"/s/x.drv"}, closure.Options{IncludeOutputs: true},
			[]string{"/s/b", "/s/c", "/s/x", "/s/x.drv"}},
		{"two roots", []string{"/s/y", "/s/b"}, closure.Options{Jobs: 1}, []string{"/s/b", "/s/c", "/s/y"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := closure.Compute(context.Background(), g, tc.roots, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Paths(); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			assertTopo(t, c)
		})
	}
}

func TestComputeInvalidRoot(t *testing.T) {
	_, err := closure.Compute(context.Background(), graph(nil), []string{"/s/nope"}, closure.Options{})
	if err == nil {
		t.Fatal("got no error for an invalid root")
	}
}

func TestFromInfosMissingReference(t *testing.T) {
	_, err := closure.FromInfos([]*store.PathInfo{{Path: "/s/a", References: []string{"/s/b"}}})
	if err == nil {
		t.Fatal("got no error for a dangling reference")
	}
}

func TestSortedDeepChain(t *testing.T) {
	edges := map[string][]string{}
	const n = 100000
	for i := range n {
		p := fmt.Sprintf("/s/%06d", i)
		if i > 0 {
			edges[p] = []string{fmt.Sprintf("/s/%06d", i-1)}
		} else {
			edges[p] = nil
		}
	}
	m := graph(edges)
	infos := make([]*store.PathInfo, 0, n)
	for _, i := range m.infos {
		infos = append(infos, i)
	}
	c, err := closure.FromInfos(infos)
	if err != nil {
		t.Fatal(err)
	}
	assertTopo(t, c)
}

// assertTopo checks that every path comes after all of its references.
func assertTopo(t *testing.T, c *closure.Graph) {
	t.Helper()
	order := c.Sorted()
	if len(order) != c.Len() {
		t.Fatalf("sorted %d paths, graph has %d", len(order), c.Len())
	}
	pos := make(map[string]int, len(order))
	for i, p := range order {
		pos[p] = i
	}
	for _, p := range order {
		for _, r := range c.Info(p).References {
			if r != p && pos[r] > pos[p] {
				t.Fatalf("%s comes before its reference %s", p, r)
			}
		}
	}
}
