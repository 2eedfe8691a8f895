package gc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/internal/synth"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/stats"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// logsGCExpr is two closures, a and b, of two derivations each, built
// fresh (nonce) so that Nix keeps their build logs.
const logsGCExpr = `{ nonce }:
let
  mk = name: script: derivation { inherit name nonce; system = builtins.currentSystem; builder = "/bin/sh";
    PATH = "/usr/bin:/bin"; args = [ "-c" script ]; };
  top = n: let dep = mk "gclogs-${n}-dep" "echo dep ${n}; echo ${n} > $out"; in
    mk "gclogs-${n}" "echo top ${n}; echo ${dep} > $out";
in { a = top "a"; b = top "b"; }
`

// TestGCLogs pushes two closures with their build logs (push --logs) and
// roots a and b, puts a .ls listing and a realisation beside each top
// path, then removes root b: on MinIO and versitygw, gc with the grace
// not yet passed condemns and deletes nothing; gc with no grace condemns
// exactly b's logs, listings and realisation (a dry run reports them),
// and a second run deletes them, leaving a's, whose narinfos (known from
// a's manifest, with their Deriver) name the logs' derivations. gc GETs
// b's narinfos only (no manifest names them), not a's for their Deriver;
// but with a's manifest rewritten as older versions wrote it, without
// derivers, it GETs a's too, and decides the same.
func TestGCLogs(t *testing.T) {
	nixtest.Require(t)
	nonce := make([]byte, 8)
	rand.Read(nonce)
	f := nixtest.WriteExpr(t, `import (`+nixtest.WriteExpr(t, logsGCExpr)+`) { nonce = "`+hex.EncodeToString(nonce)+`"; }`)
	built := nixtest.Build(t, f, "a", "b")
	ctx := context.Background()
	st, err := store.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := signing.GenerateSecretKey("gc-logs-1")

	for _, tc := range []struct {
		kind string
		old  bool // a's manifest rewritten without derivers
	}{{s3test.MinIO, false}, {s3test.VersityGW, false}, {s3test.MinIO, true}} {
		name := tc.kind
		if tc.old {
			name += "/old manifest"
		}
		t.Run(name, func(t *testing.T) {
			srv := s3test.Start(t, tc.kind)
			b := srv.Open(t, srv.NewBucket(t))
			owned := map[string][]string{}  // root: its logs, listing and realisation keys
			derivers := map[string]string{} // path: its deriver's base name
			paths := map[string]int{}       // root: paths of its closure
			for i, root := range []string{"a", "b"} {
				g, err := closure.Compute(ctx, st, []string{built[i]}, closure.Options{})
				if err != nil {
					t.Fatal(err)
				}
				res, err := push.Push(ctx, b, g, push.Options{
					Keys: []*signing.SecretKey{key}, Logs: true,
					Root: &push.RootOptions{Name: root, TopLevel: []string{built[i]}},
					Lock: &lock.Options{Command: "test push", Settle: 10 * time.Millisecond, Wait: time.Minute},
				})
				if err != nil || res.Logs != 2 {
					t.Fatalf("push %s: %+v, %v; want 2 logs", root, res, err)
				}
				for _, p := range g.Paths() {
					owned[root] = append(owned[root], layout.LogKey(g.Info(p).Deriver))
					derivers[p] = storepath.Base(g.Info(p).Deriver)
				}
				paths[root] = len(g.Paths())
				top := built[i]
				ls := layout.ListingKey(storepath.HashPart(top))
				real := layout.RealisationsDir + "sha256:" + strings.Repeat(string(rune('0'+i)), 64) + "!out.doi"
				put(t, b, ls, `{"version":1,"root":{"type":"regular","size":3}}`)
				put(t, b, real, `{"id":"sha256:x!out","outPath":"`+storepath.Base(top)+`","signatures":[],"dependentRealisations":{}}`)
				owned[root] = append(owned[root], ls, real)
			}
			// Left alone whatever happens: not a log or realisation key gc knows.
			put(t, b, "log/README", "not a log")
			put(t, b, layout.RealisationsDir+"notes.txt", "not a realisation")
			var manifests []string
			for k := range keys(t, b) {
				if strings.HasPrefix(k, layout.RootsDir+"b/") {
					manifests = append(manifests, k)
				}
			}
			if err := b.Delete(ctx, manifests...); err != nil {
				t.Fatal(err)
			}
			for k := range keys(t, b) {
				if strings.HasPrefix(k, layout.RootsDir+"a/") {
					recordDerivers(t, b, k, derivers, tc.old)
				}
			}
			// gc GETs b's narinfos, and a's too for their derivers only
			// when a's manifest does not record them.
			wantGets := paths["b"]
			if tc.old {
				wantGets += paths["a"]
			}
			before := keys(t, b)
			for _, k := range append(owned["a"], owned["b"]...) {
				if !before[k] {
					t.Fatalf("%s is not in the bucket", k)
				}
			}

			w0 := time.Now()
			// stats counts them, and its reclaimable is what gc condemns.
			st, err := stats.Collect(ctx, b, stats.Options{Grace: -1, Now: func() time.Time { return w0.Add(time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			if n := st.ByKind[stats.KindLog].Objects; n != 5 {
				t.Errorf("stats: %d logs, want 5", n)
			}
			if n := st.ByKind[stats.KindRealisation].Objects; n != 3 {
				t.Errorf("stats: %d realisations, want 3", n)
			}
			// The grace (a day) has not passed: nothing is even condemned.
			rep := serverGC(t, b, gc.Options{Now: func() time.Time { return w0.Add(time.Hour) }})
			if rep.Condemned != 0 || rep.Deleted != 0 {
				t.Errorf("gc within the grace: condemned %d, deleted %d; want none", rep.Condemned, rep.Deleted)
			}
			// No grace: b's objects are condemned, then deleted.
			noGrace := gc.Options{Grace: -1, Now: func() time.Time { return w0.Add(time.Hour) }}
			rep = serverGC(t, b, noGrace)
			if rep.NarInfoGets != wantGets {
				t.Errorf("gc read %d narinfos with a GET, want %d", rep.NarInfoGets, wantGets)
			}
			condemned := map[string]bool{}
			for _, a := range rep.Actions {
				if a.Op == gc.OpCondemn {
					condemned[a.Key] = true
				}
			}
			if st.Reclaimable.Objects != len(condemned) {
				t.Errorf("stats: %d objects reclaimable, gc condemned %d", st.Reclaimable.Objects, len(condemned))
			}
			for _, k := range owned["b"] {
				if !condemned[k] {
					t.Errorf("%s was not condemned", k)
				}
			}
			for _, k := range owned["a"] {
				if condemned[k] {
					t.Errorf("%s (root a's) was condemned", k)
				}
			}
			noGrace.Now = func() time.Time { return w0.Add(2 * time.Hour) }
			noGrace.DryRun = true
			dry, err := gc.Run(ctx, b, noGrace)
			if err != nil {
				t.Fatal(err)
			}
			noGrace.DryRun = false
			rep = serverGC(t, b, noGrace)
			for _, r := range []*gc.Report{dry, rep} {
				if r.Logs != 2 || r.Listings != 1 || r.Realisations != 1 {
					t.Errorf("gc (dry run %v) deleted %d logs, %d listings, %d realisations; want 2, 1, 1", r.DryRun, r.Logs, r.Listings, r.Realisations)
				}
			}
			after := keys(t, b)
			for _, k := range owned["a"] {
				if !after[k] {
					t.Errorf("%s (root a's) was deleted", k)
				}
			}
			for _, k := range owned["b"] {
				if after[k] {
					t.Errorf("%s (root b's) was kept", k)
				}
			}
			for _, k := range []string{"log/README", layout.RealisationsDir + "notes.txt"} {
				if !after[k] {
					t.Errorf("%s was deleted", k)
				}
			}
			var deleted []string
			for k := range before {
				if !after[k] && !strings.HasPrefix(k, gc.CondemnedPrefix) {
					deleted = append(deleted, k)
				}
			}
			for _, k := range owned["b"] {
				deleted = slices.DeleteFunc(deleted, func(d string) bool { return d == k })
			}
			for _, k := range deleted {
				if kd := layout.KindOf(k); kd != layout.KindNarInfo && kd != layout.KindNAR {
					t.Errorf("gc also deleted %s", k)
				}
			}
		})
	}
}

// recordDerivers checks that the manifest at key records the derivers
// of its paths, then, if old, rewrites it as older versions wrote it:
// without them.
func recordDerivers(t *testing.T, b s3cache.Bucket, key string, derivers map[string]string, old bool) {
	t.Helper()
	m, err := roots.Read(context.Background(), b, key)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Derivers {
		t.Errorf("%s does not record derivers", key)
	}
	for i, e := range m.Paths {
		if e.Deriver != derivers[e.Path] {
			t.Errorf("%s: %s has deriver %q, want %q", key, e.Path, e.Deriver, derivers[e.Path])
		}
		m.Paths[i].Deriver = ""
	}
	if !old {
		return
	}
	m.Derivers = false
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("deriver")) {
		t.Fatalf("rewritten manifest still names derivers: %s", data)
	}
	put(t, b, key, string(data))
}

func put(t *testing.T, b s3cache.Bucket, key, text string) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader([]byte(text)), int64(len(text)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestLogDeriverGets plans gc on a synthetic cache of 200 rooted paths,
// each with its live build log, in a real S3 server: with manifests that
// record derivers gc GETs no narinfo for the logs; with manifests written
// as older versions did, it GETs each rooted narinfo whose name is a
// log's derivation's. Either way it condemns exactly the garbage, and no
// live log.
func TestLogDeriverGets(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old manifests %v", old), func(t *testing.T) {
			s := synth.GenerateWith(500, synth.Options{Strays: 10, Logs: true, OldManifests: old})
			name := srv.NewBucket(t)
			if err := s.WriteDir(filepath.Join(srv.Dir, name), time.Now().Add(-72*time.Hour)); err != nil {
				t.Fatal(err)
			}
			p, err := gc.Inspect(ctx, srv.Open(t, name), gc.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Problems) > 0 {
				t.Fatalf("problems: %v", p.Problems)
			}
			if p.NarInfoGets != s.Want.NarInfoGets {
				t.Errorf("%d narinfos read with a GET, want %d", p.NarInfoGets, s.Want.NarInfoGets)
			}
			if got, want := ops(p.Report, gc.OpCondemn), slices.Sorted(slices.Values(s.Reclaimable)); !slices.Equal(got, want) {
				t.Errorf("condemned %d objects, want the %d garbage objects", len(got), len(want))
			}
			t.Logf("%d logs (%d live): %d GETs, %d of narinfos", s.Want.ByKind[stats.KindLog].Objects, s.Live, p.Gets, p.NarInfoGets)
		})
	}
}
