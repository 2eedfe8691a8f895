//go:build bench

// Package bench measures nixbucket against Nix on the same store paths, in
// one run, and prints the ratios (`make bench`); TestBenchLifecycle times
// stats and gc's mark on a synthetic bucket of 50 000 objects and counts
// their requests. It is not part of `make
// test`: it takes minutes and asserts nothing about time.
package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/internal/synth"
	"github.com/nixbucket/nixbucket/stats"
)

// run is one timed command: its wall time, its own CPU time (user +
// system, which other work sharing the machine disturbs less than the
// wall time), its peak RSS and its stdout.
type run struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
	out       string
}

func timed(t *testing.T, env []string, name string, args ...string) run {
	t.Helper()
	// /usr/bin/time reports the child's own peak RSS; the Go process's
	// rusage would not (a vforked child inherits its parent's high-water
	// mark).
	stat := filepath.Join(t.TempDir(), "time")
	if name == "nix" {
		args = append(slices.Clone(nixtest.Features), args...)
	}
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M %U %S", "-o", stat, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	r := run{wall: time.Since(start), out: stdout.String()}
	b, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	var user, sys float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d %f %f", &r.maxRSS, &user, &sys); err != nil {
		t.Fatalf("/usr/bin/time wrote %q: %v", b, err)
	}
	r.cpu = time.Duration((user + sys) * float64(time.Second))
	return r
}

// best runs f n times and keeps the fastest.
func best(n int, f func() run) run {
	var b run
	for i := range n {
		r := f()
		if i == 0 || r.wall < b.wall {
			b = r
		}
	}
	return b
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type row struct{ what, nix, ours, ratio string }

// narSize is the NAR size Nix records for path.
func narSize(t *testing.T, path string) int64 {
	t.Helper()
	var infos []struct {
		NarSize int64 `json:"narSize"`
	}
	if err := json.Unmarshal([]byte(nixtest.Run(t, "nix", "path-info", "--json", path)), &infos); err != nil || len(infos) != 1 {
		t.Fatalf("nix path-info --json %s: %v", path, err)
	}
	return infos[0].NarSize
}

// setDiff compares two lists of paths as sets and describes the first
// differences, or returns "" when they are equal.
func setDiff(want, got []string) string {
	w, g := slices.Sorted(slices.Values(want)), slices.Sorted(slices.Values(got))
	w, g = slices.Compact(w), slices.Compact(g)
	var missing, extra []string
	for _, p := range w {
		if _, ok := slices.BinarySearch(g, p); !ok {
			missing = append(missing, p)
		}
	}
	for _, p := range g {
		if _, ok := slices.BinarySearch(w, p); !ok {
			extra = append(extra, p)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	return fmt.Sprintf("%d missing (first %v), %d extra (first %v)", len(missing), slices.Clip(missing[:min(3, len(missing))]),
		len(extra), slices.Clip(extra[:min(3, len(extra))]))
}

func TestBench(t *testing.T) {
	bin, corpus := inputs(t)
	attrs := []string{"medium", "dag", "big"}
	if os.Getenv("NIXBUCKET_BENCH_FULL") != "" {
		attrs = append(attrs, "toolchain")
	}
	built := map[string]string{}
	for _, a := range attrs {
		t.Logf("building corpus %s", a)
		built[a] = nixtest.Build(t, corpus, a)[0]
	}
	var rows []row
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	add := func(what string, nix, ours time.Duration, extra string) {
		r := row{what, nix.Round(time.Millisecond).String(), ours.Round(time.Millisecond).String(),
			fmt.Sprintf("%.2fx", nix.Seconds()/ours.Seconds())}
		if extra != "" {
			r.ratio += "  " + extra
		}
		rows = append(rows, r)
		t.Logf("%-44s nix %-10s nixbucket %-10s %s", r.what, r.nix, r.ours, r.ratio)
	}

	mbps := func(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }

	// 1. NAR streaming. Every path of medium, one process per path (so
	// process start-up weighs as much as streaming), then single large NARs
	// (throughput): medium's largest path and big's 1 GiB file, to
	// /dev/null.
	medium := nixtest.Lines(t, "nix-store", "-qR", built["medium"])
	var narBytes, largestBytes int64
	largest := ""
	for _, p := range medium {
		var n int64
		fmt.Sscanf(strings.TrimSpace(timed(t, nil, "sh", "-c", "nix-store --dump "+p+" | wc -c").out), "%d", &n)
		narBytes += n
		if n > largestBytes {
			largest, largestBytes = p, n
		}
	}
	dumpAll := func(cmd string) run {
		return best(3, func() run {
			return timed(t, nil, "sh", "-c", "for p in "+strings.Join(medium, " ")+"; do "+cmd+" $p >/dev/null; done")
		})
	}
	nixDump, ourDump := dumpAll("nix-store --dump"), dumpAll(bin+" nar")
	add(fmt.Sprintf("nar: medium, a process per path (%d)", len(medium)), nixDump.wall, ourDump.wall,
		fmt.Sprintf("%.0f vs %.0f MB/s, start-up included", mbps(narBytes, nixDump.wall), mbps(narBytes, ourDump.wall)))
	bigBytes := narSize(t, built["big"])
	for _, one := range []struct {
		what  string
		path  string
		bytes int64
	}{
		{fmt.Sprintf("nar: medium's largest path (%s)", mb(largestBytes)), largest, largestBytes},
		{fmt.Sprintf("nar: big (one file, %s)", mb(bigBytes)), built["big"], bigBytes},
	} {
		dump := func(cmd string) run {
			return best(3, func() run { return timed(t, nil, "sh", "-c", cmd+" "+one.path+" >/dev/null") })
		}
		nixR, ourR := dump("nix-store --dump"), dump(bin+" nar")
		add(one.what, nixR.wall, ourR.wall, fmt.Sprintf("%.0f vs %.0f MB/s, RSS %d vs %d MiB",
			mbps(one.bytes, nixR.wall), mbps(one.bytes, ourR.wall), nixR.maxRSS/1024, ourR.maxRSS/1024))
	}

	// 2. Closure query on the 2000-path DAG: the same set of paths, faster.
	dag := built["dag"]
	nixQ := best(5, func() run { return timed(t, nil, "nix", "path-info", "-r", dag) })
	ourQ := best(5, func() run { return timed(t, nil, bin, "path-info", "-r", dag) })
	if diff := setDiff(strings.Fields(nixQ.out), strings.Fields(ourQ.out)); diff != "" {
		t.Fatalf("path-info -r of %s: nix and nixbucket list different paths: %s", dag, diff)
	}
	add(fmt.Sprintf("path-info -r: dag (%d paths, same set)", len(strings.Fields(ourQ.out))), nixQ.wall, ourQ.wall, "")

	// 3. Pushes: nix copy to file:// against nixbucket push to a real S3
	// server on loopback (sharing the cores).
	srv := s3test.Start(t, s3test.VersityGW)
	key := filepath.Join(t.TempDir(), "key")
	timed(t, nil, bin, "key", "generate", "--name", "bench-1", "--secret-key-file", key)
	env := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	nixCopy := func(path, params string) (run, int64) {
		dir := t.TempDir()
		r := timed(t, nil, "nix", "copy", "--to", "file://"+dir+"?"+params, path)
		return r, dirSize(t, filepath.Join(dir, "nar"))
	}
	push := func(bucket, path string, args ...string) run {
		a := append([]string{"push", "--json", "--cache", srv.StoreURL(bucket), "--secret-key-file", key}, args...)
		return timed(t, env, bin, append(a, path)...)
	}
	fileBytes := func(r run) int64 {
		var n int64
		if i := strings.Index(r.out, `"fileBytes":`); i >= 0 {
			fmt.Sscanf(r.out[i+len(`"fileBytes":`):], "%d", &n)
		}
		return n
	}

	r, size := nixCopy(built["medium"], "compression=zstd")
	ours := push(srv.NewBucket(t), built["medium"], "--compression", "zstd")
	add("push zstd: medium", r.wall, ours.wall, fmt.Sprintf("size %s vs %s, RSS %d MiB", mb(size), mb(fileBytes(ours)), ours.maxRSS/1024))

	r, size = nixCopy(built["medium"], "compression=xz&parallel-compression=true")
	ours = push(srv.NewBucket(t), built["medium"], "--compression", "xz")
	add("push xz: medium (nix parallel-compression)", r.wall, ours.wall, fmt.Sprintf("size %s vs %s (%.2fx), RSS %d MiB", mb(size), mb(fileBytes(ours)), float64(fileBytes(ours))/float64(size), ours.maxRSS/1024))

	// Best of three into fresh places: the page cache's writeback of the
	// previous rows slows whichever runs first.
	var nixDir, dagBucket string
	r = best(3, func() run {
		nixDir = t.TempDir()
		return timed(t, nil, "nix", "copy", "--to", "file://"+nixDir+"?compression=xz", dag)
	})
	ours = best(3, func() run {
		dagBucket = srv.NewBucket(t)
		return push(dagBucket, dag, "--compression", "xz")
	})
	add("push xz: dag (2001 small paths)", r.wall, ours.wall, "best of 3, fresh each")
	r = best(3, func() run { return timed(t, nil, "nix", "copy", "--to", "file://"+nixDir+"?compression=xz", dag) })
	ours = best(3, func() run { return push(dagBucket, dag, "--compression", "xz") })
	add("no-op push: dag (all present)", r.wall, ours.wall, "")

	if p, ok := built["toolchain"]; ok {
		r, size = nixCopy(p, "compression=zstd")
		ours = push(srv.NewBucket(t), p, "--compression", "zstd")
		add("push zstd: toolchain", r.wall, ours.wall, fmt.Sprintf("size %s vs %s", mb(size), mb(fileBytes(ours))))
	}

	r, _ = nixCopy(built["big"], "compression=zstd")
	ours = push(srv.NewBucket(t), built["big"], "--compression", "zstd")
	add("push zstd: big (one 1 GiB file)", r.wall, ours.wall, fmt.Sprintf("peak RSS nix %d MiB, nixbucket %d MiB", r.maxRSS/1024, ours.maxRSS/1024))

	r, size = nixCopy(built["big"], "compression=xz&parallel-compression=true")
	ours = push(srv.NewBucket(t), built["big"], "--compression", "xz")
	add("push xz: big (nix parallel-compression)", r.wall, ours.wall, fmt.Sprintf("peak RSS nix %d MiB, nixbucket %d MiB; size %s vs %s",
		r.maxRSS/1024, ours.maxRSS/1024, mb(size), mb(fileBytes(ours))))

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-44s %-10s %-10s %s\n", "what (same paths, one run)", "nix", "nixbucket", "speed-up (nix/nixbucket) and notes")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-44s %-10s %-10s %s\n", r.what, r.nix, r.ours, r.ratio)
	}
	fmt.Fprintf(&b, "NAR bytes of medium: %s\n", mb(narBytes))
	fmt.Print(b.String())
}

// TestBenchLifecycle times `stats` and `gc --dry-run` (list, read, mark,
// plan) on a synthetic cache of 50 000 objects ($NIXBUCKET_STATS_OBJECTS)
// in a real S3 server, counting their requests at a proxy.
func TestBenchLifecycle(t *testing.T) {
	bin := os.Getenv("NIXBUCKET_BIN")
	if bin == "" {
		t.Fatal("NIXBUCKET_BIN is not set: run `make bench`")
	}
	n := 50000
	if v := os.Getenv("NIXBUCKET_STATS_OBJECTS"); v != "" {
		fmt.Sscanf(v, "%d", &n)
	}
	srv := s3test.Start(t, s3test.VersityGW)
	cache := synth.Generate(n)
	// Three days old: older than the default grace, so gc marks for real.
	if err := cache.WriteDir(filepath.Join(srv.Dir, srv.Bucket), time.Now().Add(-72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	url := "s3://" + srv.Bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region
	env := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	type counted struct {
		run
		requests, gets int
	}
	// A GET of an object, not of the bucket (a listing).
	objectGet := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Trim(r.URL.Path, "/") != srv.Bucket
	}
	measure := func(args ...string) counted {
		var b counted
		for i := range 3 {
			req, gets := proxy.Requests(), proxy.Count(objectGet)
			r := timed(t, env, bin, append(args, "--json", "--cache", url)...)
			c := counted{r, proxy.Requests() - req, proxy.Count(objectGet) - gets}
			if i == 0 || c.wall < b.wall {
				b = c
			}
		}
		return b
	}

	st := measure("stats")
	var sr stats.Report
	if err := json.Unmarshal([]byte(st.out), &sr); err != nil {
		t.Fatalf("stats --json: %v", err)
	}
	if sr.Total.Objects != cache.Want.Total.Objects || sr.Paths != cache.Want.Paths {
		t.Fatalf("stats counted %d objects and %d paths, want %d and %d", sr.Total.Objects, sr.Paths, cache.Want.Total.Objects, cache.Want.Paths)
	}
	gcr := measure("gc", "--dry-run", "--keep-last", "1")
	var gr gc.Report
	if err := json.Unmarshal([]byte(gcr.out), &gr); err != nil {
		t.Fatalf("gc --dry-run --json: %v", err)
	}
	if gr.NarInfos != cache.Want.Paths || gr.Live != cache.Want.KnownPaths {
		t.Fatalf("gc saw %d narinfos, %d live; want %d, %d live", gr.NarInfos, gr.Live, cache.Want.Paths, cache.Want.KnownPaths)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-44s %-10s %-9s %-9s %s\n", fmt.Sprintf("lifecycle (%d objects, %d paths)", len(cache.Sizes), cache.Want.Paths), "time", "requests", "GETs", "notes")
	fmt.Fprintf(&b, "%-44s %-10s %-9d %-9d %s\n", "stats", st.wall.Round(time.Millisecond), st.requests, st.gets,
		fmt.Sprintf("RSS %d MiB; LIST pages and one GET per root manifest (%d)", st.maxRSS/1024, cache.Manifests))
	fmt.Fprintf(&b, "%-44s %-10s %-9d %-9d %s\n", "gc --dry-run --keep-last 1 (mark + plan)", gcr.wall.Round(time.Millisecond), gcr.requests, gcr.gets,
		fmt.Sprintf("RSS %d MiB; %d live, %d narinfo GETs (not vouched for by a kept manifest), %d actions", gcr.maxRSS/1024, gr.Live, gr.NarInfoGets, len(gr.Actions)))
	fmt.Print(b.String())
}

// inputs returns the nixbucket binary ($NIXBUCKET_BIN, which `make bench`
// builds) and the corpus expression ($NIXBUCKET_CORPUS, by default the
// shared one beside the project).
func inputs(t *testing.T) (bin, corpus string) {
	t.Helper()
	bin = os.Getenv("NIXBUCKET_BIN")
	if bin == "" {
		t.Fatal("NIXBUCKET_BIN is not set: run `make bench`")
	}
	corpus = os.Getenv("NIXBUCKET_CORPUS")
	if corpus == "" {
		corpus = "../../../shared/bench/corpus.nix"
	}
	corpus, _ = filepath.Abs(corpus)
	return bin, corpus
}
