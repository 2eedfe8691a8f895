package stats_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/browsertest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/internal/synth"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

// TestCollectSynthetic fills a real S3 bucket with a synthetic cache of
// 50 000 objects ($NIXBUCKET_STATS_OBJECTS) and checks that stats needs no
// per-object GET (requests counted at a proxy) and that its figures match
// the generator's own count.
func TestCollectSynthetic(t *testing.T) {
	n := 50000
	if v := os.Getenv("NIXBUCKET_STATS_OBJECTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("NIXBUCKET_STATS_OBJECTS=%q: %v", v, err)
		}
	}
	srv := s3test.Start(t, s3test.VersityGW)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	u, err := s3cache.ParseURL("s3://" + srv.Bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3cache.OpenS3(context.Background(), u, srv.Options())
	if err != nil {
		t.Fatal(err)
	}
	s := synth.Generate(n)
	start := time.Now()
	if err := s.WriteDir(filepath.Join(srv.Dir, srv.Bucket), start); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d objects into versitygw's data directory in %v", len(s.Sizes), time.Since(start).Round(time.Millisecond))
	// A GET of an object, not of the bucket (a listing).
	objectGet := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Trim(r.URL.Path, "/") != srv.Bucket
	}
	before, getsBefore := proxy.Requests(), proxy.Count(objectGet)
	later := time.Now().Add(72 * time.Hour) // everything older than the grace
	start = time.Now()
	r, err := stats.Collect(context.Background(), b, stats.Options{Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	requests := proxy.Requests() - before
	gets := proxy.Count(objectGet) - getsBefore
	wantRequests := (len(s.Sizes)+999)/1000 + 1 + s.Manifests
	if requests != wantRequests || r.Gets != s.Manifests || gets != s.Manifests {
		t.Errorf("stats made %d requests (%d object GETs, %d counted by stats); want %d: LIST pages, one upload listing, a GET per manifest (%d)", requests, gets, r.Gets, wantRequests, s.Manifests)
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
		{"unaccounted", r.Unaccounted, w.Unaccounted},
		{"reclaimable", r.Reclaimable, w.Reclaimable},
		{"roots", len(r.Roots), 3},
		{"missing NARs", r.MissingNARs, 0},
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
	t.Logf("stats of %d objects: %d requests, %v", len(s.Sizes), requests, took.Round(time.Millisecond))

	// Record twice and render the page in headless Chromium.
	// Two earlier points, as weekly `stats --record` runs would leave.
	p := stats.PointOf(r)
	p.Time, p.Bytes, p.NarInfos = p.Time.Add(-14*24*time.Hour), p.Bytes/3, p.NarInfos/3
	if _, err := stats.Record(context.Background(), b, p); err != nil {
		t.Fatal(err)
	}
	p.Time, p.Bytes, p.NarInfos = p.Time.Add(7*24*time.Hour), p.Bytes*2, p.NarInfos*2
	hist, err := stats.Record(context.Background(), b, p)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history after two records: %v, %v", hist, err)
	}
	if got, err := stats.History(context.Background(), b); err != nil || len(got) != 2 || got[1].Bytes != p.Bytes {
		t.Fatalf("History = %+v, %v", got, err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "stats.html")
	var buf bytes.Buffer
	if err := stats.WriteHTML(&buf, r, hist); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "http://") || strings.Contains(buf.String(), "https://") || strings.Contains(buf.String(), "src=") {
		t.Error("the page refers to external assets")
	}
	dom := browsertest.Chromium(t, "--dump-dom", "file://"+page)
	for _, want := range []string{`id="line-bytes"`, `id="line-narinfos"`, "<circle", fmt.Sprintf(`id="total-objects">%d<`, r.Total.Objects)} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %s", want)
		}
	}
	shot := filepath.Join(dir, "stats.png")
	browsertest.Chromium(t, "--screenshot="+shot, "--window-size=900,900", "file://"+page)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 5000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if out := os.Getenv("NIXBUCKET_STATS_SCREENSHOT"); out != "" {
		data, _ := os.ReadFile(shot)
		os.WriteFile(out, data, 0o644)
	}
}
