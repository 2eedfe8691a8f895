package remove_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/remove"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
	"github.com/nixbucket/nixbucket/verify"
)

// fixture is a closure pushed to a bucket with a root, and Nix's own view
// of it (the oracle for referrers).
type fixture struct {
	b     s3cache.Bucket
	paths map[string]string // app, dag, lib
	graph *closure.Graph
}

// newFixture builds the sample's app, dag and lib with a salt of its own
// and pushes the closure of app and dag to a new bucket of a kind of server
// with the root "main" (lib is in app's closure).
func newFixture(t *testing.T, kind, salt string) *fixture {
	t.Helper()
	nixtest.Require(t)
	built := nixtest.Build(t, nixtest.Sample(t, 8, salt), "app", "dag", "lib")
	f := &fixture{paths: map[string]string{"app": built[0], "dag": built[1], "lib": built[2]}}
	st, err := store.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if f.graph, err = closure.Compute(t.Context(), st, []string{f.paths["app"], f.paths["dag"]}, closure.Options{}); err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t, kind)
	f.b = srv.Open(t, srv.Bucket)
	key, err := signing.GenerateSecretKey("rm-test-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = push.Push(t.Context(), f.b, f.graph, push.Options{
		Compression: "zstd", Keys: []*signing.SecretKey{key},
		Root: &push.RootOptions{Name: "main", TopLevel: []string{f.paths["app"], f.paths["dag"]}},
		Lock: testLock(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testLock() *lock.Options {
	return &lock.Options{Command: "test", Settle: 10 * time.Millisecond, Wait: time.Minute}
}

// referrers is Nix's answer: the paths of the pushed closure that refer to
// p, directly or not (nix-store -q --referrers-closure), p excluded.
func (f *fixture) referrers(t *testing.T, p string) []string {
	t.Helper()
	var out []string
	for _, r := range nixtest.Lines(t, "nix-store", "-q", "--referrers-closure", p) {
		if r != p && f.graph.Info(r) != nil {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// listing returns every key in the bucket with its ETag.
func listing(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	var out []string
	if err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		if !strings.HasPrefix(o.Key, layout.LocksDir) {
			out = append(out, o.Key+" "+o.ETag)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sound fails the test unless every visible narinfo has its NAR and
// every reference's narinfo (verify's invariant).
func sound(t *testing.T, b s3cache.Bucket, what string) {
	t.Helper()
	rep, err := verify.Check(context.Background(), b, verify.Options{})
	if err != nil {
		t.Fatalf("%s: verify: %v", what, err)
	}
	if !rep.OK() {
		t.Fatalf("%s: the cache is not sound: %v", what, rep.Faults)
	}
}

// assertOrder fails unless every removed path comes after all its
// referrers among the removed (reading their narinfos from before).
func assertOrder(t *testing.T, removed []string, infos map[string]*narinfo.NarInfo) {
	t.Helper()
	pos := map[string]int{}
	for i, p := range removed {
		pos[p] = i
	}
	for i, p := range removed {
		for _, ref := range infos[p].References {
			rp := infos[p].StorePath[:strings.LastIndexByte(infos[p].StorePath, '/')+1] + ref
			if j, ok := pos[rp]; ok && rp != p && j < i {
				t.Errorf("%s removed before its referrer %s", rp, p)
			}
		}
	}
}

func readInfos(t *testing.T, f *fixture) map[string]*narinfo.NarInfo {
	t.Helper()
	out := map[string]*narinfo.NarInfo{}
	for _, p := range f.graph.Paths() {
		data, err := s3cache.ReadSmall(context.Background(), f.b, layout.NarInfoKeyOf(p), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if out[p], err = narinfo.ParseString(string(data)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestRemove runs rm on a real closure on each real server: refusals
// (referenced, not in the cache) delete nothing; a dry run lists in a safe
// order and deletes nothing; --with-referrers removes referrers first,
// warns of the root, leaves the cache sound and its NARs to gc, which
// deletes them a grace later and nothing else.
func TestRemove(t *testing.T) {
	t.Parallel()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, kind, "rm-"+kind)
			ctx := t.Context()
			infos := readInfos(t, f)
			before := listing(t, f.b)
			lib, dag := f.paths["lib"], f.paths["dag"]
			libRefs := f.referrers(t, lib)
			if len(libRefs) == 0 {
				t.Fatalf("no referrer of %s in the closure: the test would prove nothing", lib)
			}

			_, err := remove.Run(ctx, f.b, []string{lib}, remove.Options{Lock: testLock()})
			var re *remove.ReferencedError
			if !errors.As(err, &re) || !errors.Is(err, remove.ErrReferenced) {
				t.Fatalf("rm of a referenced path: %v, want a ReferencedError", err)
			}
			if !slices.Equal(re.Referrers, libRefs) || !slices.Equal(re.Paths, []string{lib}) {
				t.Errorf("refusal names %v referring to %v, want %v (Nix's) referring to %s", re.Referrers, re.Paths, libRefs, lib)
			}
			for _, r := range libRefs {
				if !strings.Contains(err.Error(), r) {
					t.Errorf("the refusal %q does not name %s", err, r)
				}
			}
			missing := strings.Repeat("0", 32)
			if _, err := remove.Run(ctx, f.b, []string{missing, f.paths["app"]}, remove.Options{Lock: testLock(), WithReferrers: true}); !errors.Is(err, remove.ErrNotInCache) || !strings.Contains(err.Error(), missing) {
				t.Errorf("rm of a path not in the cache: %v, want ErrNotInCache naming it", err)
			}
			if got := listing(t, f.b); !slices.Equal(got, before) {
				t.Fatalf("a refused rm changed the bucket:\n%q\nwant\n%q", got, before)
			}

			// app refers to itself, and nothing else refers to it.
			if app := f.paths["app"]; !slices.Contains(infos[app].References, storepath.Base(app)) {
				t.Errorf("%s has no self-reference: the test would prove nothing", app)
			} else if rep, err := remove.Run(ctx, f.b, []string{app}, remove.Options{DryRun: true}); err != nil || !slices.Equal(rep.Removed, []string{app}) || len(rep.Referrers) != 0 {
				t.Errorf("dry run of %s, which only it refers to: %+v, %v; want it alone", app, rep, err)
			}

			// A dry run of the whole DAG under the dag output's deepest node.
			deepest := ""
			for _, p := range f.graph.Paths() {
				if strings.HasSuffix(p, "-dagrm-"+kind+"-0") {
					deepest = p
				}
			}
			dry, err := remove.Run(ctx, f.b, []string{deepest}, remove.Options{DryRun: true, WithReferrers: true})
			if err != nil {
				t.Fatal(err)
			}
			want := append(f.referrers(t, deepest), deepest)
			if got := slices.Sorted(slices.Values(dry.Removed)); !slices.Equal(got, slices.Sorted(slices.Values(want))) || !slices.Contains(want, dag) {
				t.Errorf("dry run would remove %v, want %v", got, want)
			}
			assertOrder(t, dry.Removed, infos)
			if got := listing(t, f.b); !slices.Equal(got, before) {
				t.Fatalf("a dry run changed the bucket")
			}

			// The real thing: lib and its referrers. lib and dag have
			// listings, as nix copy with write-nar-listing writes them.
			for _, p := range []string{lib, dag} {
				if err := f.b.Put(ctx, layout.ListingKey(storepath.HashPart(p)), strings.NewReader("{}"), 2, s3cache.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			// Condemned a second from now: after the NARs' LastModified, whole
			// seconds as gc keeps them.
			condemned := time.Now().Add(time.Second)
			rep, err := remove.Run(ctx, f.b, []string{lib}, remove.Options{Lock: testLock(), WithReferrers: true,
				Now: func() time.Time { return condemned }})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(slices.Sorted(slices.Values(rep.Referrers)), libRefs) || rep.Removed[len(rep.Removed)-1] != lib {
				t.Errorf("removed %v (referrers %v), want %v then %s", rep.Removed, rep.Referrers, libRefs, lib)
			}
			assertOrder(t, rep.Removed, infos)
			var rooted []string
			for _, r := range rep.Roots {
				if !slices.Equal(r.Roots, []string{"main"}) {
					t.Errorf("%s listed by %v, want [main]", r.Path, r.Roots)
				}
				rooted = append(rooted, r.Path)
			}
			if !slices.Equal(rooted, slices.Sorted(slices.Values(rep.Removed))) {
				t.Errorf("roots reported for %v, want every removed path %v", rooted, rep.Removed)
			}
			sound(t, f.b, "after rm --with-referrers")
			if rep.Deleted != len(rep.Removed)+1 {
				t.Errorf("deleted %d objects, want the %d narinfos and lib's listing", rep.Deleted, len(rep.Removed))
			}
			have := map[string]bool{}
			for _, k := range listing(t, f.b) {
				have[strings.Fields(k)[0]] = true
			}
			var nars []string
			for _, p := range rep.Removed {
				if have[layout.NarInfoKeyOf(p)] || have[layout.ListingKey(storepath.HashPart(p))] {
					t.Errorf("%s is still visible", p)
				}
				if !have[infos[p].URL] {
					t.Errorf("the NAR %s of %s was deleted at once, want it left to gc", infos[p].URL, p)
				}
				nars = append(nars, infos[p].URL)
			}
			if !have[layout.ListingKey(storepath.HashPart(dag))] {
				t.Errorf("the listing of %s, which stays, is gone", dag)
			}
			slices.Sort(nars)
			if !slices.Equal(rep.NARs, slices.Compact(nars)) {
				t.Errorf("condemned %v, want %v", rep.NARs, nars)
			}

			// gc does not fail closed on the manifest's entries without
			// narinfo; the first run a grace later (or at once with no
			// grace, in a dry run) deletes the NARs, and nothing else.
			for _, tc := range []struct {
				name  string
				at    time.Time
				grace time.Duration
				dry   bool
			}{
				{"with no grace (dry run)", condemned.Add(time.Second), -1, true},
				{"a grace later", condemned.Add(gc.DefaultGrace + time.Second), 0, false},
			} {
				grep, err := gc.Run(ctx, f.b, gc.Options{Now: func() time.Time { return tc.at }, Grace: tc.grace, DryRun: tc.dry, Lock: testLock()})
				if err != nil {
					t.Fatalf("gc %s after rm: %v", tc.name, err)
				}
				var deleted []string
				for _, a := range grep.Actions {
					if a.Op == gc.OpDelete {
						deleted = append(deleted, a.Key)
					}
				}
				slices.Sort(deleted)
				if !slices.Equal(deleted, rep.NARs) {
					t.Errorf("gc %s after rm deleted %v, want the removed paths' NARs %v", tc.name, deleted, rep.NARs)
				}
			}
			sound(t, f.b, "after gc")
		})
	}
}
