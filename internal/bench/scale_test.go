//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/internal/synth"
)

// scaleCommands are the commands that read a whole bucket, with what
// their --json report calls the narinfos they read with a GET.
var scaleCommands = []struct {
	name string
	args []string
}{
	{"stats", []string{"stats"}},
	{"gc --dry-run", []string{"gc", "--dry-run", "--keep-last", "1"}},
	{"verify", []string{"verify"}},
}

// scaleRow is one command on one cache.
type scaleRow struct {
	objects     int
	where, what string
	wall, cpu   time.Duration // cpu: user + system
	requests    int           // -1 on file://
	bound       int           // LIST pages + manifests
	maxRSS      int64
	narinfoGets int
}

// TestBenchScale runs stats, gc --dry-run and verify on synthetic caches
// (package synth: 40% narinfos with their NARs, all vouched for by root
// manifests, and orphans, logs, listings): $NIXBUCKET_SCALE_SMALL objects
// (default 100 000) in versitygw, counting requests at a proxy, and on
// file://, then $NIXBUCKET_SCALE_LARGE (default 1 000 000) on file://. It
// prints wall time, requests against the bound (one LIST page per 1000
// objects plus one GET per manifest), peak RSS and RSS per 100 000
// objects, and the large/small time ratio of each command. Run alone:
//
//	NIXBUCKET_BIN=$PWD/bin/nixbucket go test -tags bench -run TestBenchScale -v -timeout 60m ./internal/bench/
func TestBenchScale(t *testing.T) {
	bin := os.Getenv("NIXBUCKET_BIN")
	if bin == "" {
		t.Fatal("NIXBUCKET_BIN is not set")
	}
	small, large := 100000, 1000000
	if v := os.Getenv("NIXBUCKET_SCALE_SMALL"); v != "" {
		fmt.Sscanf(v, "%d", &small)
	}
	if v := os.Getenv("NIXBUCKET_SCALE_LARGE"); v != "" {
		fmt.Sscanf(v, "%d", &large)
	}
	old := time.Now().Add(-72 * time.Hour) // older than gc's grace: it marks for real
	var rows []scaleRow

	// check runs one command and checks its report against the cache.
	check := func(t *testing.T, cache *synth.Cache, where string, runs int, env []string, url string, requests func() int) {
		for _, c := range scaleCommands {
			before := requests()
			r := timed(t, env, bin, append(c.args, "--json", "--cache", url)...)
			row := scaleRow{objects: len(cache.Sizes), where: where, what: c.name, wall: r.wall, cpu: r.cpu, requests: requests() - before,
				bound: (len(cache.Sizes)+999)/1000 + cache.Manifests, maxRSS: r.maxRSS}
			for range runs - 1 { // the fastest of runs: the machine is shared
				if again := timed(t, env, bin, append(c.args, "--json", "--cache", url)...); again.wall < row.wall {
					row.wall, row.cpu, row.maxRSS = again.wall, again.cpu, again.maxRSS
				}
			}
			var rep struct {
				Total       struct{ Objects int } `json:"total"`
				Objects     int                   `json:"objects"`
				NarInfos    int                   `json:"narinfos"`
				StorePaths  int                   `json:"storePaths"`
				NarInfoGets int                   `json:"narinfoGets"`
				Faults      []json.RawMessage     `json:"faults"`
			}
			if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
				t.Fatalf("%s --json: %v", c.name, err)
			}
			row.narinfoGets = rep.NarInfoGets
			if n := max(rep.Total.Objects, rep.Objects); n != len(cache.Sizes) {
				t.Errorf("%s on %s saw %d objects, want %d", c.name, where, n, len(cache.Sizes))
			}
			if n := max(rep.NarInfos, rep.StorePaths); n != cache.Want.Paths {
				t.Errorf("%s on %s saw %d narinfos, want %d", c.name, where, n, cache.Want.Paths)
			}
			if len(rep.Faults) > 0 {
				t.Errorf("verify on %s found %d faults in a sound cache, first %s", where, len(rep.Faults), rep.Faults[0])
			}
			t.Logf("%d objects, %s on %s: %s (CPU %s), %d requests, %d narinfo GETs, RSS %d MiB", row.objects, c.name, where,
				row.wall.Round(time.Millisecond), row.cpu.Round(time.Millisecond), row.requests, row.narinfoGets, row.maxRSS/1024)
			rows = append(rows, row)
		}
	}

	// versitygw, through a proxy that counts requests.
	cache := synth.Generate(small)
	srv := s3test.Start(t, s3test.VersityGW)
	if err := cache.WriteDir(filepath.Join(srv.Dir, srv.Bucket), old); err != nil {
		t.Fatal(err)
	}
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	check(t, cache, "s3", 1, []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey},
		"s3://"+srv.Bucket+"?endpoint="+proxy.URL+"&region="+s3test.Region, proxy.Requests)

	noRequests := func() int { return -1 }
	for _, n := range []int{small, large} {
		if n != small {
			cache = nil
			runtime.GC()
			start := time.Now()
			cache = synth.Generate(n)
			t.Logf("generated %d objects in %s", len(cache.Sizes), time.Since(start).Round(time.Millisecond))
		}
		dir := filepath.Join(t.TempDir(), "cache")
		start := time.Now()
		if err := cache.WriteFileBucket(dir, old); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d objects in %s", len(cache.Sizes), time.Since(start).Round(time.Millisecond))
		check(t, cache, "file", 2, nil, "file://"+dir, noRequests)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-9s %-5s %-13s %-9s %-9s %-17s %-12s %-9s %s\n", "objects", "where", "command", "time", "CPU", "requests (bound)", "narinfo GETs", "peak RSS", "RSS/100k")
	for _, r := range rows {
		req := "-"
		if r.where == "s3" {
			req = fmt.Sprintf("%d (%d)", r.requests, r.bound)
		}
		fmt.Fprintf(&b, "%-9d %-5s %-13s %-9s %-9s %-17s %-12d %-9s %.1f MiB\n", r.objects, r.where, r.what, r.wall.Round(time.Millisecond), r.cpu.Round(time.Millisecond), req,
			r.narinfoGets, fmt.Sprintf("%d MiB", r.maxRSS/1024), float64(r.maxRSS)/1024/(float64(r.objects)/1e5))
	}
	for _, c := range scaleCommands {
		var s, l *scaleRow
		for i := range rows {
			if rows[i].where == "file" && rows[i].what == c.name {
				if s == nil {
					s = &rows[i]
				} else {
					l = &rows[i]
				}
			}
		}
		if s != nil && l != nil {
			fmt.Fprintf(&b, "%s on file://, %d vs %d objects (×%.1f): time ×%.2f, CPU ×%.2f, peak RSS ×%.2f\n", c.name, l.objects, s.objects,
				float64(l.objects)/float64(s.objects), l.wall.Seconds()/s.wall.Seconds(), l.cpu.Seconds()/s.cpu.Seconds(), float64(l.maxRSS)/float64(s.maxRSS))
		}
	}
	fmt.Print(b.String())
}
