package gc_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/internal/synth"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
	"github.com/nixbucket/nixbucket/verify"
)

// recorder records the DeleteObjects calls made through it (of cache
// objects: not locks or condemnation records) and the writes of lock
// objects, and runs onDelete after each recorded call.
type recorder struct {
	*s3cache.S3Bucket
	mu       sync.Mutex
	deletes  [][]string
	lockPuts int
	onDelete func(n int) // after the n-th recorded call
}

func (r *recorder) Delete(ctx context.Context, keys ...string) error {
	if len(keys) > 0 && (strings.HasPrefix(keys[0], lock.Prefix) || strings.HasPrefix(keys[0], gc.CondemnedPrefix)) {
		return r.S3Bucket.Delete(ctx, keys...)
	}
	err := r.S3Bucket.Delete(ctx, keys...)
	r.mu.Lock()
	r.deletes = append(r.deletes, slices.Clone(keys))
	n := len(r.deletes)
	r.mu.Unlock()
	if r.onDelete != nil {
		r.onDelete(n)
	}
	return err
}

func (r *recorder) Put(ctx context.Context, key string, rd io.Reader, size int64, o s3cache.PutOptions) error {
	if strings.HasPrefix(key, lock.Prefix) {
		r.mu.Lock()
		r.lockPuts++
		r.mu.Unlock()
	}
	return r.S3Bucket.Put(ctx, key, rd, size, o)
}

func (r *recorder) puts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lockPuts
}

// TestSweep runs gc on a synthetic cache of thousands of garbage objects
// in a real S3 server, with a recording bucket: deletions go in
// DeleteObjects batches of at most 1000 keys, narinfos first (each before
// the narinfos it refers to) and NARs and listings after; the lock is
// checked before every batch (a gc whose lock is removed stops at once,
// leaving the cache sound) and refreshed while gc runs.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	s := synth.GenerateWith(3000, synth.Options{Strays: 1200})
	if err := s.WriteDir(filepath.Join(srv.Dir, srv.Bucket), time.Now().Add(-72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	b := srv.Open(t, srv.Bucket)
	// Drop root c: its chain of paths, each referring to the previous,
	// becomes garbage too.
	x, err := roots.List(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	c := x.Get("c").Manifests[0].Key
	m, err := roots.Read(ctx, b, c)
	if err != nil {
		t.Fatal(err)
	}
	garbage := slices.Clone(s.Reclaimable)
	for _, e := range m.Paths {
		garbage = append(garbage, e.NarInfo, e.NAR)
		ls := layout.ListingKey(storepath.HashPart(e.Path))
		if _, ok := s.Sizes[ls]; ok {
			garbage = append(garbage, ls)
		}
	}
	slices.Sort(garbage)
	if err := b.Delete(ctx, c); err != nil {
		t.Fatal(err)
	}
	refs := map[string][]string{} // narinfo key → keys of the narinfos it refers to
	for k, data := range s.Data {
		if layout.KindOf(k) == layout.KindNarInfo {
			ni, err := narinfo.ParseString(string(data))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range ni.References {
				refs[k] = append(refs[k], layout.NarInfoKeyOf(r))
			}
		}
	}

	t0 := time.Now()
	var skew atomic.Int64 // the local clock's advance, moved by the test
	lockOpts := lock.Options{Command: "test gc", Settle: 20 * time.Millisecond, Refresh: 30 * time.Millisecond,
		Clock: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }}
	run := func(bk s3cache.Bucket, at time.Time) (*gc.Report, error) {
		return gc.Run(ctx, bk, gc.Options{Now: func() time.Time { return at }, Lock: &lockOpts})
	}
	rep, err := run(b, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ops(rep, gc.OpCondemn); !slices.Equal(got, garbage) {
		t.Fatalf("condemned %d objects, want the %d garbage objects", len(got), len(garbage))
	}

	// A gc whose lock is removed (unlock --all) after its third batch
	// stops before the fourth.
	rec := &recorder{S3Bucket: b}
	rec.onDelete = func(n int) {
		if n == 3 {
			if gone, err := lock.RemoveStale(ctx, b, 0, true); err != nil || len(gone) == 0 {
				t.Errorf("unlock --all: %v, %v; want the gc's lock removed", gone, err)
			}
			skew.Add(int64(lockOpts.Settle)) // past the reuse of the last confirmation
		}
	}
	if _, err := run(rec, t0.Add(25*time.Hour)); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("gc whose lock was removed: %v; want ErrLost", err)
	}
	if len(rec.deletes) != 3 {
		t.Fatalf("gc made %d delete calls after losing its lock at the third; want it to stop", len(rec.deletes))
	}
	if r, err := verify.Check(ctx, b, verify.Options{}); err != nil || !r.OK() {
		t.Fatalf("verify after an interrupted sweep: %v, %v", err, r.Faults)
	}

	// The next gc deletes the rest; its lock is refreshed meanwhile (the
	// first batch waits for a refresh).
	rec2 := &recorder{S3Bucket: b}
	rec2.onDelete = func(n int) {
		if n != 1 {
			return
		}
		start, deadline := rec2.puts(), time.Now().Add(time.Minute)
		for rec2.puts() == start && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	done := make(chan struct{})
	var rep2 *gc.Report
	go func() {
		defer close(done)
		rep2, err = run(rec2, t0.Add(25*time.Hour))
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the lock was never refreshed while gc ran")
	}
	if err != nil {
		t.Fatal(err)
	}
	if rec2.puts() < 2 {
		t.Fatalf("%d writes of the lock: want the first and a refresh", rec2.puts())
	}
	calls := append(rec.deletes, rec2.deletes...)
	var all []string
	at := map[string]int{}
	lastNarInfo, firstOther, full := -1, len(calls), false
	for i, keys := range calls {
		if len(keys) > gc.DeleteBatch {
			t.Fatalf("delete call %d has %d keys, over S3's limit", i, len(keys))
		}
		full = full || len(keys) == gc.DeleteBatch
		for _, k := range keys {
			at[k] = i
			all = append(all, k)
			if layout.KindOf(k) == layout.KindNarInfo {
				lastNarInfo = max(lastNarInfo, i)
			} else {
				firstOther = min(firstOther, i)
			}
		}
	}
	slices.Sort(all)
	if !slices.Equal(all, garbage) {
		t.Fatalf("deleted %d objects, want the %d garbage objects", len(all), len(garbage))
	}
	if !full {
		t.Errorf("no delete call of %d keys: the batches were not filled", gc.DeleteBatch)
	}
	if lastNarInfo >= firstOther {
		t.Errorf("a NAR or listing was deleted in call %d, before or with the last narinfo (call %d)", firstOther, lastNarInfo)
	}
	for k, rs := range refs {
		for _, r := range rs {
			if i, ok := at[k]; ok && r != k {
				if j, ok := at[r]; ok && j <= i {
					t.Errorf("%s was deleted in call %d, not after %s, which refers to it (call %d)", r, j, k, i)
				}
			}
		}
	}
	if r, err := verify.Check(ctx, b, verify.Options{}); err != nil || !r.OK() || r.NarInfos != s.Live-len(m.Paths) {
		t.Fatalf("verify after gc: %+v, %v", r, err)
	}
	t.Logf("gc deleted %d objects in %d calls (%d before losing its lock), %d lock writes; report: %d deleted", len(all), len(calls), len(rec.deletes), rec2.puts(), rep2.Deleted)
}
