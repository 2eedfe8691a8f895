package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

// TestStatsPrometheus pushes two closures with roots to MinIO and leaves
// a NAR no narinfo refers to; `stats --prometheus` passes promtool's
// check, labels every series with the cache (no secret in it), and its
// figures are the bucket's: objects and bytes by kind as the test counts
// them in a listing, each root's closure as Nix knows it, the orphan NAR
// and what gc would reclaim (it), the compression ratio of the pushed
// NARs, the newest manifests as --json has them; the last gc's time
// appears once gc has run, the LastModified of the record gc left.
func TestStatsPrometheus(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	f := nixtest.Sample(t, 4, "cli-stats-prom")
	built := nixtest.Build(t, f, "app", "dag")
	app, dag := built[0], built[1]
	srv := s3test.Start(t, s3test.MinIO)
	env := creds(srv)
	closures := map[string][]string{}
	for root, p := range map[string]string{"main": app, "dag": dag} {
		if code, _, stderr := runBin(t, env, "push", "--cache", srv.URL, "--root", root, p); code != 0 {
			t.Fatalf("push %s: exit %d: %s", root, code, stderr)
		}
		closures[root] = nixtest.Lines(t, "nix-store", "-qR", p)
	}
	b := srv.Open(t, srv.Bucket)
	ctx := context.Background()
	orphan := layout.NarKey(strings.Repeat("0", 52), ".xz")
	orphanData := strings.Repeat("x", 1234)
	if err := b.Put(ctx, orphan, strings.NewReader(orphanData), int64(len(orphanData)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	u, err := s3cache.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	cache := stats.CacheLabel(u)
	if !strings.HasPrefix(cache, "s3://"+srv.Bucket) {
		t.Fatalf("cache label %q does not name the bucket", cache)
	}
	scrape := func() (string, stats.Report) {
		t.Helper()
		code, text, stderr := runBin(t, env, "stats", "--cache", srv.URL, "--grace", "0", "--prometheus")
		if code != 0 {
			t.Fatalf("stats --prometheus: exit %d: %s", code, stderr)
		}
		_, js, _ := runBin(t, env, "stats", "--cache", srv.URL, "--grace", "0", "--json")
		var r stats.Report
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("stats --json: %v: %q", err, js)
		}
		promtoolCheck(t, "stats --prometheus", text)
		if strings.Contains(text, srv.SecretKey) {
			t.Fatalf("stats --prometheus printed the AWS secret")
		}
		return text, r
	}
	text, r := scrape()
	fams := promFamilies(t, text)
	labelEverywhere(t, fams, "nixbucket_", "cache", cache)

	// Objects and bytes by kind: the test's own count of a listing.
	type count struct{ objects, bytes float64 }
	byKind := map[string]count{}
	var narBytes float64
	if err := b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		k := stats.KindOf(o.Key)
		c := byKind[k]
		c.objects++
		c.bytes += float64(o.Size)
		byKind[k] = c
		if k == stats.KindNAR && o.Key != orphan {
			narBytes += float64(o.Size)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if byKind[stats.KindNarInfo].objects == 0 || byKind[stats.KindRoot].objects != 2 {
		t.Fatalf("the pushes left %v: the test would prove nothing", byKind)
	}
	for _, k := range stats.Kinds {
		wantValue(t, fams, byKind[k].objects, "nixbucket_cache_objects", "kind="+k)
		wantValue(t, fams, byKind[k].bytes, "nixbucket_cache_bytes", "kind="+k)
	}

	// Each root's closure, as Nix knows it.
	var narSize float64
	all := map[string]bool{}
	for root, closure := range closures {
		infos := nixtest.PathInfos(t, closure...)
		var size float64
		for _, p := range closure {
			size += float64(infos[p].NarSize)
			if !all[p] {
				all[p] = true
				narSize += float64(infos[p].NarSize)
			}
		}
		wantValue(t, fams, float64(len(closure)), "nixbucket_cache_root_paths", "root="+root)
		wantValue(t, fams, size, "nixbucket_cache_root_nar_bytes", "root="+root)
		wantValue(t, fams, 1, "nixbucket_cache_root_manifests", "root="+root)
		wantValue(t, fams, 0, "nixbucket_cache_root_missing_paths", "root="+root)
		wantValue(t, fams, 0, "nixbucket_cache_root_pinned", "root="+root)
	}
	if float64(len(all)) != byKind[stats.KindNarInfo].objects {
		t.Fatalf("%d paths pushed, %v narinfos in the bucket", len(all), byKind[stats.KindNarInfo].objects)
	}
	wantValue(t, fams, narSize/narBytes, "nixbucket_cache_compression_ratio")

	// The orphan NAR, which is all gc would reclaim (after condemning it).
	wantValue(t, fams, 1, "nixbucket_cache_orphan_nars")
	wantValue(t, fams, float64(len(orphanData)), "nixbucket_cache_orphan_nar_bytes")
	wantValue(t, fams, 1, "nixbucket_cache_gc_reclaimable_objects")
	wantValue(t, fams, float64(len(orphanData)), "nixbucket_cache_gc_reclaimable_bytes")
	wantValue(t, fams, 0, "nixbucket_cache_gc_reclaimable_now_objects")
	wantValue(t, fams, 0, "nixbucket_cache_gc_refuses")
	wantValue(t, fams, 0, "nixbucket_cache_narinfos_missing_nar")

	// Manifest times, as --json has them.
	var newest float64
	for _, root := range r.Roots {
		ts := float64(root.Newest.UnixNano()) / 1e9
		wantValue(t, fams, ts, "nixbucket_cache_root_newest_manifest_timestamp_seconds", "root="+root.Name)
		newest = max(newest, ts)
	}
	wantValue(t, fams, newest, "nixbucket_cache_newest_manifest_timestamp_seconds")
	if _, ok := promSeries(t, fams, "nixbucket_cache_last_gc_timestamp_seconds"); ok || !r.LastGC.IsZero() {
		t.Fatalf("a last gc time before any gc ran (--json: %v)", r.LastGC)
	}

	// gc condemns the orphan and leaves its record.
	if code, _, stderr := runBin(t, env, "gc", "--cache", srv.URL, "--grace", "0"); code != 0 {
		t.Fatalf("gc: exit %d: %s", code, stderr)
	}
	// Its time as listed (a HEAD's Last-Modified has whole seconds).
	var rec s3cache.ObjectInfo
	if err := b.List(ctx, gc.LastRunKey, func(o s3cache.ObjectInfo) error { rec = o; return nil }); err != nil || rec.Key != gc.LastRunKey {
		t.Fatalf("gc left no record of its run (%v): %+v", err, rec)
	}
	text, r = scrape()
	fams = promFamilies(t, text)
	wantValue(t, fams, float64(rec.LastModified.UnixNano())/1e9, "nixbucket_cache_last_gc_timestamp_seconds")
	if !r.LastGC.Equal(rec.LastModified) {
		t.Errorf("stats --json: lastGC %v, the record was written at %v", r.LastGC, rec.LastModified)
	}
	// The figures that gc changed, as --json has them now.
	wantValue(t, fams, float64(r.ReclaimableNow.Objects), "nixbucket_cache_gc_reclaimable_now_objects")
	wantValue(t, fams, float64(r.ReclaimableNow.Bytes), "nixbucket_cache_gc_reclaimable_now_bytes")
	wantValue(t, fams, float64(r.ByKind[stats.KindOther].Objects), "nixbucket_cache_objects", "kind="+stats.KindOther)
	if r.Reclaimable.Objects != 1 {
		t.Errorf("after gc condemned the orphan, --json says %d objects reclaimable, want it", r.Reclaimable.Objects)
	}

	// Text: the last gc is said; --prometheus goes alone.
	if _, out, _ := runBin(t, env, "stats", "--cache", srv.URL); !strings.Contains(out, "last gc run ended "+rec.LastModified.UTC().Format("2006-01-02T15:04:05Z")) {
		t.Errorf("stats does not say when gc ran (%v):\n%s", rec.LastModified, out)
	}
	for _, other := range [][]string{{"--json"}, {"--html", t.TempDir() + "/x.html"}} {
		code, stdout, stderr := runBin(t, env, slices.Concat([]string{"stats", "--cache", srv.URL, "--prometheus"}, other)...)
		if code != exitUsage || stdout != "" {
			t.Errorf("stats --prometheus %v: exit %d, stdout %q; want a usage error", other, code, stdout)
		}
		oneErrorLine(t, stderr)
	}
}
