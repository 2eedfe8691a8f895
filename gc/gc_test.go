package gc_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
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
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/verify"
)

// fixture holds built store paths and a signing key.
type fixture struct {
	st  store.Store
	key *signing.SecretKey
	// paths by name: appA, appB, dagA, dagB, libA
	paths map[string]string
}

func buildFixture(t *testing.T) *fixture {
	t.Helper()
	return buildFixtureOf(t, 8, "gcA", "gcB")
}

// buildFixtureOf builds the fixture from samples with DAGs of n paths.
func buildFixtureOf(t *testing.T, n int, saltA, saltB string) *fixture {
	t.Helper()
	nixtest.Require(t)
	fa := nixtest.Sample(t, n, saltA)
	fb := nixtest.Sample(t, n, saltB)
	a := nixtest.Build(t, fa, "app", "dag", "lib")
	b := nixtest.Build(t, fb, "app", "dag")
	st, err := store.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := signing.GenerateSecretKey("gc-test-1")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, key: key, paths: map[string]string{
		"appA": a[0], "dagA": a[1], "libA": a[2], "appB": b[0], "dagB": b[1],
	}}
}

// closureOf returns the closure of the named paths.
func (f *fixture) closureOf(t *testing.T, names ...string) *closure.Graph {
	t.Helper()
	var ps []string
	for _, n := range names {
		ps = append(ps, f.paths[n])
	}
	g, err := closure.Compute(context.Background(), f.st, ps, closure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// push pushes the closure of names with a root manifest recorded at now.
func (f *fixture) push(t *testing.T, b s3cache.Bucket, root string, now time.Time, names ...string) {
	t.Helper()
	g := f.closureOf(t, names...)
	var top []string
	for _, n := range names {
		top = append(top, f.paths[n])
	}
	_, err := push.Push(context.Background(), b, g, push.Options{
		Compression: "zstd", Keys: []*signing.SecretKey{f.key},
		Root: &push.RootOptions{Name: root, TopLevel: top, Now: func() time.Time { return now }},
		Lock: &lock.Options{Command: "test push", Settle: 10 * time.Millisecond, Wait: time.Minute},
	})
	if err != nil {
		t.Fatalf("pushing %v: %v", names, err)
	}
}

// keys lists the bucket's keys.
func keys(t *testing.T, b s3cache.Bucket) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error { out[o.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// garbageKeys returns the narinfo and NAR keys of the closure of names
// minus the closure of the kept names, reading the narinfos for NAR URLs
// (a NAR the kept paths share, same content under another name, stays).
func (f *fixture) garbageKeys(t *testing.T, b s3cache.Bucket, names, kept []string) []string {
	t.Helper()
	keep := map[string]bool{}
	keptNARs := map[string]bool{}
	for _, p := range f.closureOf(t, kept...).Paths() {
		keep[p] = true
		keptNARs[readNarInfo(t, b, p).URL] = true
	}
	var out []string
	for _, p := range f.closureOf(t, names...).Paths() {
		if keep[p] {
			continue
		}
		out = append(out, layout.NarInfoKeyOf(p))
		if u := readNarInfo(t, b, p).URL; !keptNARs[u] && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no garbage in %v beyond %v", names, kept)
	}
	return out
}

func readNarInfo(t *testing.T, b s3cache.Bucket, path string) *narinfo.NarInfo {
	t.Helper()
	ni, err := narinfo.ParseString(readAll(t, b, layout.NarInfoKeyOf(path)))
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

// assertSubstitutes has real Nix substitute the closures of names from b
// into an empty store, and checks the cache with verify.
func (f *fixture) assertSubstitutes(t *testing.T, b s3cache.Bucket, names ...string) {
	t.Helper()
	rep, err := verify.Check(context.Background(), b, verify.Options{TrustedKeys: signing.NewPublicKeys(f.key.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify found faults: %v", rep.Faults)
	}
	web := httptest.NewServer(serve.Handler(b, nil))
	defer web.Close()
	var ps []string
	for _, n := range names {
		ps = append(ps, f.paths[n])
	}
	root, err := nixtest.Substitute(t, web.URL, f.key.PublicKey().String(), ps)
	if err != nil {
		t.Fatalf("nix could not substitute kept roots %v: %v", names, err)
	}
	nixtest.AssertInStore(t, root, f.closureOf(t, names...).Paths())
}

func runGC(t *testing.T, b s3cache.Bucket, now time.Time, opts gc.Options) *gc.Report {
	t.Helper()
	opts.Now = func() time.Time { return now }
	opts.Lock = &lock.Options{Command: "test gc", Settle: 10 * time.Millisecond}
	rep, err := gc.Run(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("gc at %s: %v", now, err)
	}
	return rep
}

func ops(rep *gc.Report, op string) []string {
	var out []string
	for _, a := range rep.Actions {
		if a.Op == op {
			out = append(out, a.Key)
		}
	}
	slices.Sort(out)
	return out
}

func assertGone(t *testing.T, b s3cache.Bucket, gone []string) {
	t.Helper()
	have := keys(t, b)
	for _, k := range gone {
		if have[k] {
			t.Errorf("%s is still in the bucket", k)
		}
	}
}

func assertPresent(t *testing.T, b s3cache.Bucket, want []string) {
	t.Helper()
	have := keys(t, b)
	for _, k := range want {
		if !have[k] {
			t.Errorf("%s is gone", k)
		}
	}
}

// TestScenarioWeeks runs pushes with roots, retention, pins and gc over
// simulated weeks on each real S3 server; after each gc every kept root
// still substitutes into an empty store with real Nix, and what was
// reclaimable is gone once its grace has passed.
func TestScenarioWeeks(t *testing.T) {
	f := buildFixture(t)
	ctx := context.Background()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			b := srv.Open(t, srv.Bucket)
			w0 := time.Now().UTC()
			day := 24 * time.Hour
			week := 7 * day
			keep := gc.Options{KeepLast: 1, Grace: day}

			f.push(t, b, "release", w0, "appA")
			f.push(t, b, "main", w0, "dagA")
			rep := runGC(t, b, w0.Add(2*day), keep)
			if rep.Deleted != 0 || rep.Condemned != 0 || rep.Kept != 2 {
				t.Fatalf("first gc: %+v, want nothing to do", rep)
			}
			// Every narinfo was pushed under a kept root: known from the
			// manifests by ETag, none read.
			if rep.NarInfoGets != 0 || rep.NarInfos == 0 {
				t.Fatalf("first gc read %d of %d narinfos; want none", rep.NarInfoGets, rep.NarInfos)
			}
			if err := roots.Pin(ctx, b, "release", w0); err != nil {
				t.Fatal(err)
			}

			// Week 1: main moves on; its old manifest expires and dagA is condemned.
			f.push(t, b, "main", w0.Add(week), "dagB", "libA")
			garbageA := f.garbageKeys(t, b, []string{"dagA"}, []string{"dagB", "libA", "appA"})
			rep = runGC(t, b, w0.Add(week+day), keep)
			if exp := ops(rep, gc.OpExpire); len(exp) != 1 || !strings.HasPrefix(exp[0], "roots/main/") {
				t.Fatalf("expired %v, want main's first manifest", exp)
			}
			condemned := ops(rep, gc.OpCondemn)
			for _, k := range garbageA {
				if !slices.Contains(condemned, k) {
					t.Errorf("%s not condemned", k)
				}
			}
			if len(condemned) != len(garbageA) || len(ops(rep, gc.OpDelete)) != 0 {
				t.Fatalf("condemned %d (want %d), deleted %v", len(condemned), len(garbageA), ops(rep, gc.OpDelete))
			}
			f.assertSubstitutes(t, b, "appA", "dagB", "libA")

			// Half a grace later: still only condemned.
			rep = runGC(t, b, w0.Add(week+day+12*time.Hour), keep)
			if rep.Deleted != 0 || rep.Condemned != len(garbageA) {
				t.Fatalf("gc within the grace: deleted %d, condemned %d; want 0, %d", rep.Deleted, rep.Condemned, len(garbageA))
			}
			assertPresent(t, b, garbageA)

			// Week 2: release moves on but is pinned; dagA goes.
			f.push(t, b, "release", w0.Add(2*week), "appB")
			rep = runGC(t, b, w0.Add(2*week+day), keep)
			if got := ops(rep, gc.OpDelete); !slices.Equal(got, sorted(garbageA)) {
				t.Fatalf("deleted %v, want %v", got, sorted(garbageA))
			}
			if rep.FreedBytes <= 0 || rep.Kept != 3 {
				t.Fatalf("report %+v: want bytes freed and 3 manifests kept", rep)
			}
			assertGone(t, b, garbageA)
			f.assertSubstitutes(t, b, "appA", "appB", "dagB", "libA")

			// Unpinned, release's first manifest expires; appA's closure
			// goes, but libA, which main keeps, stays.
			if err := roots.Unpin(ctx, b, "release"); err != nil {
				t.Fatal(err)
			}
			garbageApp := f.garbageKeys(t, b, []string{"appA"}, []string{"appB", "dagB", "libA"})
			dry := runGC(t, b, w0.Add(3*week), gc.Options{KeepLast: 1, Grace: day, DryRun: true})
			if len(ops(dry, gc.OpExpire)) != 1 || len(ops(dry, gc.OpCondemn)) != len(garbageApp) {
				t.Fatalf("dry run: %+v", dry)
			}
			rep = runGC(t, b, w0.Add(3*week), keep)
			if len(ops(rep, gc.OpCondemn)) != len(garbageApp) {
				t.Fatalf("condemned %v, want %v", ops(rep, gc.OpCondemn), garbageApp)
			}
			rep = runGC(t, b, w0.Add(3*week+2*day), keep)
			if got := ops(rep, gc.OpDelete); !slices.Equal(got, sorted(garbageApp)) {
				t.Fatalf("deleted %v, want %v", got, sorted(garbageApp))
			}
			assertGone(t, b, garbageApp)
			assertPresent(t, b, []string{layout.NarInfoKeyOf(f.paths["libA"])})
			f.assertSubstitutes(t, b, "appB", "dagB", "libA")
			if _, err := b.Stat(ctx, layout.CacheInfoKey); err != nil {
				t.Fatalf("gc touched nix-cache-info: %v", err)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestFailClosed: a corrupt manifest, or an unknown key under roots/,
// makes gc delete nothing, say why, and leave the bucket as it was.
func TestFailClosed(t *testing.T) {
	f := buildFixture(t)
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	w0 := time.Now().UTC()
	f.push(t, b, "main", w0, "dagA")
	f.push(t, b, "other", w0, "appA")
	// Expire the only manifest that keeps appA, so gc has work to do.
	if _, err := roots.Remove(ctx, b, "other"); err != nil {
		t.Fatal(err)
	}
	runGC(t, b, w0.Add(48*time.Hour), gc.Options{Grace: time.Hour}) // condemns appA's closure
	for _, tc := range []struct{ name, key, body, want string }{
		{"truncated manifest", roots.Key("main", w0.Add(time.Hour)), `{"version": 1, "name": "main", "paths": [`, "parsing root manifest"},
		{"wrong version", roots.Key("main", w0.Add(time.Hour)), `{"version": 9, "name": "main"}`, "version 9"},
		{"stray key", "roots/main/notes.txt", "hello", "unknown keys under roots/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.Put(ctx, tc.key, strings.NewReader(tc.body), int64(len(tc.body)), s3cache.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			defer b.Delete(ctx, tc.key)
			before := keys(t, b)
			_, err := gc.Run(ctx, b, gc.Options{Grace: time.Hour, Now: func() time.Time { return w0.Add(96 * time.Hour) }})
			if !errors.Is(err, gc.ErrFailClosed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("gc: %v; want a fail-closed error mentioning %q", err, tc.want)
			}
			if after := keys(t, b); len(after) != len(before) {
				t.Fatalf("gc changed the bucket: %d objects before, %d after", len(before), len(after))
			}
		})
	}
	// Without the corruption, the same gc deletes appA's closure.
	rep := runGC(t, b, w0.Add(96*time.Hour), gc.Options{Grace: time.Hour})
	if rep.Deleted == 0 {
		t.Fatalf("gc deleted nothing: %+v", rep)
	}
	f.assertSubstitutes(t, b, "dagA")

	// A bucket of narinfos without any root is refused.
	if _, err := roots.Remove(ctx, b, "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.Run(ctx, b, gc.Options{Grace: time.Hour, Now: func() time.Time { return w0.Add(96 * time.Hour) }}); !errors.Is(err, gc.ErrFailClosed) || !strings.Contains(err.Error(), "no root") {
		t.Fatalf("gc without roots: %v; want a refusal", err)
	}
}

// readAll reads an object.
func readAll(t *testing.T, b s3cache.Bucket, key string) string {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// heldReader yields n zero bytes, then blocks until release is closed.
type heldReader struct {
	n       int
	release chan struct{}
}

func (r *heldReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		<-r.release
		return 0, io.ErrUnexpectedEOF
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

// TestAbortUploads: gc aborts an unfinished multipart upload older than
// the grace (a push killed mid-NAR), and leaves a younger one alone.
func TestAbortUploads(t *testing.T) {
	srv := s3test.Start(t, s3test.VersityGW) // MinIO lists uploads by exact key only
	b := srv.Open(t, srv.Bucket)
	ctx := context.Background()
	const key = layout.NarDir + "killed.nar.xz"
	r := &heldReader{n: 5 << 20, release: make(chan struct{})}
	putErr := make(chan error, 1)
	go func() { putErr <- b.Put(ctx, key, r, -1, s3cache.PutOptions{PartSize: 5 << 20}) }()
	defer close(r.release)
	uploads := func() int {
		n := 0
		if err := b.ListMultipartUploads(ctx, "", func(s3cache.Upload) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(time.Minute); uploads() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the held upload never showed up")
		}
	}
	rep := runGC(t, b, time.Now(), gc.Options{Grace: time.Hour})
	if rep.Aborted != 0 || uploads() != 1 {
		t.Fatalf("gc aborted a young upload: %+v", rep)
	}
	dry := runGC(t, b, time.Now().Add(2*time.Hour), gc.Options{Grace: time.Hour, DryRun: true})
	if got := ops(dry, gc.OpAbort); len(got) != 1 || got[0] != key || uploads() != 1 {
		t.Fatalf("dry run: aborts %v, %d uploads left; want it listed, not aborted", got, uploads())
	}
	rep = runGC(t, b, time.Now().Add(2*time.Hour), gc.Options{Grace: time.Hour})
	if rep.Aborted != 1 || uploads() != 0 {
		t.Fatalf("gc: %+v, %d uploads left; want the old upload aborted", rep, uploads())
	}
}

// TestRewrittenNarInfo: when another tool rewrites a kept narinfo (here
// with its NAR under another key, as nix copy names NARs by FileHash), gc
// sees that the ETag no longer matches the manifest, reads the narinfo,
// keeps the new NAR and collects the old one.
func TestRewrittenNarInfo(t *testing.T) {
	f := buildFixture(t)
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	w0 := time.Now().UTC()
	f.push(t, b, "main", w0, "libA")
	key := layout.NarInfoKeyOf(f.paths["libA"])
	ni := readNarInfo(t, b, f.paths["libA"])
	oldNAR := ni.URL
	nar := readAll(t, b, oldNAR)
	ni.URL = layout.NarKey(strings.Repeat("1", 52), ".zst")
	if err := b.Put(ctx, ni.URL, strings.NewReader(nar), int64(len(nar)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	text := ni.String()
	if err := b.Put(ctx, key, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	rep := runGC(t, b, w0.Add(2*day), gc.Options{Grace: day})
	if rep.NarInfoGets != 1 || !slices.Equal(ops(rep, gc.OpCondemn), []string{oldNAR}) {
		t.Fatalf("gc read %d narinfos and condemned %v; want 1 read and only %s", rep.NarInfoGets, ops(rep, gc.OpCondemn), oldNAR)
	}
	rep = runGC(t, b, w0.Add(4*day), gc.Options{Grace: day})
	if !slices.Equal(ops(rep, gc.OpDelete), []string{oldNAR}) {
		t.Fatalf("deleted %v, want %s", ops(rep, gc.OpDelete), oldNAR)
	}
	f.assertSubstitutes(t, b, "libA")
}
