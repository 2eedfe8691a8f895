package gc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
)

// testLock is the lock gc takes in these tests.
var testLock = lock.Options{Command: "test gc", Settle: 20 * time.Millisecond}

// serverGC runs gc on the server's clock (no simulated time).
func serverGC(t *testing.T, b s3cache.Bucket, opts gc.Options) *gc.Report {
	t.Helper()
	l := testLock
	opts.Lock = &l
	rep, err := gc.Run(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	return rep
}

// backdate makes objects of a versitygw bucket look written d ago: the
// posix back end reports a file's modification time as LastModified.
func backdate(t *testing.T, srv *s3test.Server, d time.Duration, keys ...string) {
	t.Helper()
	when := time.Now().Add(-d)
	for _, k := range keys {
		if err := os.Chtimes(filepath.Join(srv.Dir, srv.Bucket, filepath.FromSlash(k)), when, when); err != nil {
			t.Fatal(err)
		}
	}
}

// closureKeys returns the narinfo and NAR keys of the closure of names.
func (f *fixture) closureKeys(t *testing.T, b s3cache.Bucket, names ...string) []string {
	t.Helper()
	var out []string
	for _, p := range f.closureOf(t, names...).Paths() {
		out = append(out, layout.NarInfoKeyOf(p))
		if u := readNarInfo(t, b, p).URL; !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// shiftCondemned rewrites gc's condemnation records as if made d earlier.
func shiftCondemned(t *testing.T, b s3cache.Bucket, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	var recs []string
	if err := b.List(ctx, gc.CondemnedPrefix, func(o s3cache.ObjectInfo) error { recs = append(recs, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("no condemnation record")
	}
	for _, k := range recs {
		var rec struct {
			Created time.Time            `json:"created"`
			Keys    map[string]time.Time `json:"keys"`
		}
		if err := json.Unmarshal([]byte(readAll(t, b, k)), &rec); err != nil {
			t.Fatal(err)
		}
		rec.Created = rec.Created.Add(-d)
		for key, s := range rec.Keys {
			rec.Keys[key] = s.Add(-d)
		}
		data, _ := json.Marshal(rec)
		if err := b.Put(ctx, k, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeepWithin: --keep-within keeps, per root, the manifests younger
// than the window (with --keep-last, also the newest N), never those of a
// pinned root, and the closures of the expired ones are condemned.
func TestKeepWithin(t *testing.T) {
	f := buildFixture(t)
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	w0 := time.Now().UTC()
	day := 24 * time.Hour
	f.push(t, b, "main", w0.Add(-20*day), "dagA")
	f.push(t, b, "main", w0.Add(-10*day), "appA")
	f.push(t, b, "main", w0.Add(-3*day), "libA")
	f.push(t, b, "main", w0.Add(-day), "appB")
	x, err := roots.List(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	ms := x.Get("main").Manifests // newest first
	now := w0.Add(2 * time.Hour)  // every object is older than the grace
	for _, tc := range []struct {
		name    string
		opts    gc.Options
		expired []string
	}{
		{"within 7d", gc.Options{KeepWithin: 7 * day}, []string{ms[2].Key, ms[3].Key}},
		{"within 7d or last 3", gc.Options{KeepWithin: 7 * day, KeepLast: 3}, []string{ms[3].Key}},
		{"within 2d", gc.Options{KeepWithin: 2 * day}, []string{ms[1].Key, ms[2].Key, ms[3].Key}},
		{"within 30d", gc.Options{KeepWithin: 30 * day}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Grace, tc.opts.DryRun = time.Hour, true
			rep := runGC(t, b, now, tc.opts)
			if got, want := ops(rep, gc.OpExpire), sorted(tc.expired); !slices.Equal(got, want) {
				t.Fatalf("expired %v, want %v", got, want)
			}
			if rep.Kept != len(ms)-len(tc.expired) {
				t.Fatalf("kept %d manifests, want %d", rep.Kept, len(ms)-len(tc.expired))
			}
		})
	}
	// A pinned root keeps everything.
	if err := roots.Pin(ctx, b, "main", w0); err != nil {
		t.Fatal(err)
	}
	if rep := runGC(t, b, now, gc.Options{KeepWithin: 2 * day, Grace: time.Hour, DryRun: true}); len(ops(rep, gc.OpExpire)) != 0 {
		t.Fatalf("pinned root: expired %v", ops(rep, gc.OpExpire))
	}
	if err := roots.Unpin(ctx, b, "main"); err != nil {
		t.Fatal(err)
	}
	// For real: the two old manifests go, and what only they kept is condemned.
	garbage := f.garbageKeys(t, b, []string{"dagA", "appA"}, []string{"libA", "appB"})
	rep := runGC(t, b, now, gc.Options{KeepWithin: 7 * day, Grace: time.Hour})
	assertGone(t, b, []string{ms[2].Key, ms[3].Key})
	if got := ops(rep, gc.OpCondemn); !slices.Equal(got, sorted(garbage)) {
		t.Fatalf("condemned %v, want %v", got, sorted(garbage))
	}
	f.assertSubstitutes(t, b, "libA", "appB")
}

// TestYoungNarInfoKeepsReferences: the grace rule. A push without a root
// (one in flight, or nix copy) skips a path that gc condemned long ago;
// while its narinfos are younger than the grace, gc keeps what they refer
// to, though no root reaches it; once they are old, their closure goes.
func TestYoungNarInfoKeepsReferences(t *testing.T) {
	f := buildFixture(t)
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	f.push(t, b, "other", time.Now(), "dagB")
	f.push(t, b, "lib", time.Now(), "libA")
	if _, err := roots.Remove(ctx, b, "lib"); err != nil {
		t.Fatal(err)
	}
	libKeys := f.closureKeys(t, b, "libA")
	backdate(t, srv, 3*time.Hour, libKeys...)
	opts := gc.Options{Grace: time.Hour}
	if got := ops(serverGC(t, b, opts), gc.OpCondemn); !slices.Equal(got, sorted(libKeys)) {
		t.Fatalf("condemned %v, want lib's closure %v", got, sorted(libKeys))
	}
	// A push without a root finds lib present and refers to it.
	res, err := push.Push(ctx, b, f.closureOf(t, "appA"), push.Options{Compression: "zstd", Keys: []*signing.SecretKey{f.key}, Lock: &testLock})
	if err != nil || res.Skipped == 0 {
		t.Fatalf("push of appA: %+v, %v; want lib skipped", res, err)
	}
	shiftCondemned(t, b, 2*time.Hour) // lib was condemned two graces ago
	rep := serverGC(t, b, opts)
	if rep.Young == 0 || rep.Deleted != 0 || len(ops(rep, gc.OpCondemn)) != 0 {
		t.Fatalf("gc beside young narinfos: %d young, deleted %v, condemned %v; want lib kept for appA", rep.Young, ops(rep, gc.OpDelete), ops(rep, gc.OpCondemn))
	}
	assertPresent(t, b, libKeys)
	f.assertSubstitutes(t, b, "appA", "dagB")

	// Once appA's narinfos are older than the grace, its closure goes.
	appKeys := f.closureKeys(t, b, "appA")
	backdate(t, srv, 3*time.Hour, appKeys...)
	if got := ops(serverGC(t, b, opts), gc.OpCondemn); !slices.Equal(got, sorted(appKeys)) {
		t.Fatalf("condemned %v, want appA's closure %v", got, sorted(appKeys))
	}
	shiftCondemned(t, b, 2*time.Hour)
	if got := ops(serverGC(t, b, opts), gc.OpDelete); !slices.Equal(got, sorted(appKeys)) {
		t.Fatalf("deleted %v, want appA's closure %v", got, sorted(appKeys))
	}
	assertGone(t, b, appKeys)
	f.assertSubstitutes(t, b, "dagB")
}

// TestRevival: an object rewritten after gc condemned it (a push that
// uploaded it again) is not deleted when its grace is over: its
// condemnation restarts, and what it refers to stays too.
func TestRevival(t *testing.T) {
	f := buildFixture(t)
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	f.push(t, b, "other", time.Now(), "dagB")
	f.push(t, b, "x", time.Now(), "appA")
	if _, err := roots.Remove(ctx, b, "x"); err != nil {
		t.Fatal(err)
	}
	garbage := f.garbageKeys(t, b, []string{"appA"}, []string{"dagB"})
	backdate(t, srv, 3*time.Hour, garbage...)
	opts := gc.Options{Grace: time.Hour}
	if got := ops(serverGC(t, b, opts), gc.OpCondemn); !slices.Equal(got, sorted(garbage)) {
		t.Fatalf("condemned %v, want %v", got, sorted(garbage))
	}
	// Rewritten after its condemnation, as a push that found it missing
	// would: same text, a new LastModified.
	top := layout.NarInfoKeyOf(f.paths["appA"])
	text := readAll(t, b, top)
	if err := b.Put(ctx, top, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	backdate(t, srv, 90*time.Minute, top) // older than the grace, newer than its condemnation
	shiftCondemned(t, b, 2*time.Hour)
	rep := serverGC(t, b, opts)
	if rep.Deleted != 0 {
		t.Fatalf("gc deleted %v; want nothing: %s was rewritten after it was condemned", ops(rep, gc.OpDelete), top)
	}
	if got := ops(rep, gc.OpCondemn); !slices.Equal(got, sorted(garbage)) {
		t.Fatalf("condemned %v, want %v again", got, sorted(garbage))
	}
	assertPresent(t, b, garbage)
	f.assertSubstitutes(t, b, "appA", "dagB")
	// Two hours later (objects and records all two hours older), its new
	// condemnation has run out too.
	backdate(t, srv, 5*time.Hour, garbage...)
	backdate(t, srv, 3*time.Hour+30*time.Minute, top)
	shiftCondemned(t, b, 2*time.Hour)
	if got := ops(serverGC(t, b, opts), gc.OpDelete); !slices.Equal(got, sorted(garbage)) {
		t.Fatalf("deleted %v, want %v", got, sorted(garbage))
	}
	f.assertSubstitutes(t, b, "dagB")
}

// TestSkewedClock: gc and the lock read the server's clock, so a gc
// machine whose clock is hours ahead neither takes a push's live lock for
// stale nor young narinfos for old, and one whose clock is behind still
// sees a dead lock go stale.
func TestSkewedClock(t *testing.T) {
	f := buildFixture(t)
	ctx := context.Background()
	srv := s3test.Start(t, s3test.MinIO)
	b := srv.Open(t, srv.Bucket)
	f.push(t, b, "other", time.Now(), "dagB")
	f.push(t, b, "lib", time.Now(), "libA")
	if _, err := roots.Remove(ctx, b, "lib"); err != nil {
		t.Fatal(err)
	}
	ahead := func() time.Time { return time.Now().Add(2 * time.Hour) }
	behind := func() time.Time { return time.Now().Add(-2 * time.Hour) }

	held, err := lock.Acquire(ctx, b, lock.Shared, lock.Options{Command: "test push", Settle: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l := testLock
	_, err = gc.Run(ctx, b, gc.Options{Grace: time.Hour, Clock: ahead, Lock: &l})
	if !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("gc with a clock 2h ahead beside a live push lock: %v; want ErrLocked", err)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	rep, err := gc.Run(ctx, b, gc.Options{Grace: time.Hour, Clock: ahead, Lock: &l})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Young == 0 || rep.Condemned != 0 {
		t.Fatalf("gc with a clock 2h ahead: %d young, condemned %v; want lib young and kept", rep.Young, ops(rep, gc.OpCondemn))
	}

	// A lock nobody refreshes goes stale after StaleAfter, on the server's clock.
	dead := `{"kind":"exclusive","id":"dead","host":"elsewhere","pid":1}`
	if err := b.Put(ctx, "locks/exclusive-dead.json", strings.NewReader(dead), int64(len(dead)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	lo := lock.Options{Settle: 20 * time.Millisecond, StaleAfter: time.Second, Clock: behind}
	got, err := lock.Acquire(ctx, b, lock.Shared, lo)
	if err != nil {
		t.Fatalf("a lock with a clock 2h behind beside a stale lock: %v", err)
	}
	got.Release()
	lo.Clock = ahead
	lo.StaleAfter = time.Hour
	if _, err := lock.Acquire(ctx, b, lock.Shared, lo); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("a lock with a clock 2h ahead beside a 2s-old lock (stale after 1h): %v; want ErrLocked", err)
	}
}
