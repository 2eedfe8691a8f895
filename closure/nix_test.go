package closure_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestAgainstNix compares closures with `nix-store -qR [--include-outputs]`
// over a 2000-path DAG, a multi-output derivation and .drv files whose
// outputs exist or do not, on both back ends: the SQLite database (one
// recursive query per round) and a real nix-daemon of the test's own (a
// breadth-first walk, one QueryPathInfo per path). Every path's info is
// compared with `nix path-info --json`, and the topological order is checked
// against those references.
func TestAgainstNix(t *testing.T) {
	f := nixtest.Sample(t, 2000, "closure")
	built := nixtest.Build(t, f, "all", "multi")
	drvs := nixtest.Instantiate(t, f, "all", "unbuilt", "app")
	ctx := context.Background()
	db, err := store.OpenDB(ctx, store.DBPath(), storepath.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d, err := store.OpenDaemon(ctx, nixtest.Daemon(t), storepath.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, ok := closure.Querier(d).(closure.ClosureQuerier); ok {
		t.Fatal("the daemon back end offers QueryClosure: this test would not cover the breadth-first walk")
	}
	if _, ok := closure.Querier(db).(closure.ClosureQuerier); !ok {
		t.Fatal("the database back end has no QueryClosure: this test would not cover the bulk walk")
	}
	if _, ok := closure.Querier(db).(closure.ClosurePathsQuerier); !ok {
		t.Fatal("the database back end has no QueryClosurePaths: this test would not cover the paths-only walk")
	}

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
			oracle := nixtest.PathInfos(t, want...)
			if len(oracle) != len(want) {
				t.Fatalf("nix path-info knows %d of the %d paths of nix-store -qR", len(oracle), len(want))
			}
			for name, s := range map[string]closure.Querier{"db": db, "daemon": d} {
				t.Run(name, func(t *testing.T) {
					g, err := closure.Compute(ctx, s, tc.roots, closure.Options{IncludeOutputs: tc.incl})
					if err != nil {
						t.Fatal(err)
					}
					if got := g.Paths(); !slices.Equal(got, want) {
						t.Fatalf("got %d paths, nix-store %d; first difference: %s", len(got), len(want), firstDiff(got, want))
					}
					for _, p := range want {
						checkInfo(t, g.Info(p), oracle[p])
					}
					assertTopo(t, g)
					paths, err := closure.Paths(ctx, s, tc.roots, closure.Options{IncludeOutputs: tc.incl})
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(paths, want) {
						t.Fatalf("closure.Paths: got %d paths, nix-store %d; first difference: %s", len(paths), len(want), firstDiff(paths, want))
					}
				})
			}
		})
	}
}

// checkInfo compares a path's info in the graph with Nix's.
func checkInfo(t *testing.T, got *store.PathInfo, want nixtest.PathInfo) {
	t.Helper()
	refs := want.References
	if len(refs) == 0 {
		refs = nil
	}
	if got.NarHash == nil || got.NarHash.Format(nixhash.SRI, true) != want.NarHash || got.NarSize != want.NarSize ||
		!slices.Equal(got.References, refs) || got.Deriver != want.Deriver || got.CA != want.CA ||
		!slices.Equal(got.Signatures, want.Signatures) {
		t.Fatalf("%s: got %+v, nix path-info says %+v", want.Path, *got, want)
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
