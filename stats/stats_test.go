package stats_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/internal/synth"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

// TestCollectSynthetic fills a real S3 bucket with a synthetic cache of
// 50 000 objects ($NIXBUCKET_STATS_OBJECTS) whose every narinfo a root
// manifest vouches for, and checks that stats needs no per-object GET
// (requests counted at a proxy) and that its figures match the count the
// generator made while creating the objects; then, on a smaller cache with
// narinfos pushed without a root (some missing their NAR, some with NARs
// keyed by FileHash as nix copy does), that stats reads exactly those and
// its figures are still exact. Its reclaimable figure is gc's own dry run.
func TestCollectSynthetic(t *testing.T) {
	n := 50000
	if v := os.Getenv("NIXBUCKET_STATS_OBJECTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("NIXBUCKET_STATS_OBJECTS=%q: %v", v, err)
		}
	}
	srv := s3test.Start(t, s3test.VersityGW)
	t.Run("vouched", func(t *testing.T) {
		r, b := collectSynthetic(t, srv, synth.Generate(n))
		renderPage(t, b, r)
	})
	t.Run("strays", func(t *testing.T) {
		collectSynthetic(t, srv, synth.GenerateWith(n/10, synth.Options{Strays: n / 100}))
	})
}

// collectSynthetic writes s into a new bucket of srv (three days old),
// runs stats through a counting proxy and checks every figure.
func collectSynthetic(t *testing.T, srv *s3test.Server, s *synth.Cache) (*stats.Report, s3cache.Bucket) {
	bucket := srv.NewBucket(t)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	u, err := s3cache.ParseURL("s3://" + bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3cache.OpenS3(context.Background(), u, srv.Options())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.WriteDir(filepath.Join(srv.Dir, bucket), start.Add(-72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d objects into versitygw's data directory in %v", len(s.Sizes), time.Since(start).Round(time.Millisecond))
	// A GET of an object, not of the bucket (a listing).
	objectGet := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Trim(r.URL.Path, "/") != bucket
	}
	before, getsBefore := proxy.Requests(), proxy.Count(objectGet)
	start = time.Now()
	r, err := stats.Collect(context.Background(), b, stats.Options{}) // the server's clock: everything is older than the grace
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	requests := proxy.Requests() - before
	gets := proxy.Count(objectGet) - getsBefore
	// GETs: each manifest, nix-cache-info, and the narinfos no manifest
	// vouches for; besides: the LIST pages, the upload listing, one HEAD
	// for the server's clock.
	wantGets := s.Manifests + 1 + s.Want.NarInfoGets
	wantRequests := (len(s.Sizes)+999)/1000 + 1 + 1 + wantGets
	if requests != wantRequests || gets != wantGets || r.Gets != wantGets || r.NarInfoGets != s.Want.NarInfoGets {
		t.Errorf("stats made %d requests, %d object GETs (it counted %d, %d of narinfos); want %d requests, %d GETs: %d manifests, nix-cache-info and %d narinfos no manifest vouches for",
			requests, gets, r.Gets, r.NarInfoGets, wantRequests, wantGets, s.Manifests, s.Want.NarInfoGets)
	}
	w := s.Want
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"total", r.Total, w.Total},
		{"store paths", r.Paths, w.Paths},
		{"known paths", r.KnownPaths, w.KnownPaths},
		{"known NarSize", r.KnownNarSize, w.KnownNarSize},
		{"known stored", r.KnownStored, w.KnownStored},
		{"NARs no narinfo refers to", r.Unaccounted, w.Unaccounted},
		{"narinfos whose NAR is missing", r.MissingNARs, w.MissingNARs},
		{"reclaimable", r.Reclaimable, w.Reclaimable},
		{"reclaimable now", r.ReclaimableNow, stats.Count{}},
		{"gc refuses", r.GCRefuses, false},
		{"roots", r.Roots, w.Roots},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for _, k := range stats.Kinds {
		if r.ByKind[k] != w.ByKind[k] {
			t.Errorf("kind %s = %+v, want %+v", k, r.ByKind[k], w.ByKind[k])
		}
	}
	// The reclaimable figure is what gc's dry run would condemn.
	dry, err := gc.Run(context.Background(), b, gc.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var condemned []string
	var size int64
	for _, a := range dry.Actions {
		if a.Op == gc.OpCondemn {
			condemned = append(condemned, a.Key)
			size += a.Size
		}
	}
	if !slices.Equal(condemned, slices.Sorted(slices.Values(s.Reclaimable))) || size != r.Reclaimable.Bytes || dry.Live != s.Live {
		t.Errorf("gc --dry-run condemns %d objects (%d bytes) with %d live; stats says %v reclaimable, the generator made %d garbage objects and %d live paths",
			len(condemned), size, dry.Live, r.Reclaimable, len(s.Reclaimable), s.Live)
	}
	t.Logf("stats of %d objects: %d requests, %v", len(s.Sizes), requests, took.Round(time.Millisecond))
	return r, b
}
