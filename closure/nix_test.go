package closure_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
)

// TestAgainstNix compares closures with `nix-store -qR [--include-outputs]`
// over a 2000-path DAG, a multi-output derivation and .drv files whose
// outputs exist or do not, on the SQLite back end.
func TestAgainstNix(t *testing.T) {
	f := nixtest.Sample(t, 2000, "closure")
	built := nixtest.Build(t, f, "all", "multi")
	drvs := nixtest.Instantiate(t, f, "all", "unbuilt", "app")
	ctx := context.Background()
	s, err := store.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	cases := []struct {
		name  string
		roots []string
		incl  bool
	}{
		{"runtime closure", built[:1], false},
		{"multi-output", built[1:], false},
		{"drv closure", drvs, false},
		{"drv with outputs", drvs, true},
		{"outputs and drvs", append(slices.Clone(built), drvs...), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-qR"}
			if tc.incl {
				args = append(args, "--include-outputs")
			}
			want := nixtest.Lines(t, "nix-store", append(args, tc.roots...)...)
			slices.Sort(want)
			g, err := closure.Compute(ctx, s, tc.roots, closure.Options{IncludeOutputs: tc.incl})
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Paths(); !slices.Equal(got, want) {
				t.Fatalf("got %d paths, nix-store %d; first difference: %s", len(got), len(want), firstDiff(got, want))
			}
			assertTopo(t, g)
		})
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] + " vs " + b[i]
		}
	}
	return "length"
}
