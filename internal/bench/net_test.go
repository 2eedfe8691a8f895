//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/verify"
)

// netRun is one timed command with its resource use and what it cost on
// the network.
type netRun struct {
	run
	requests  int64
	conns     int64
	fileBytes int64
}

// runVia runs a command whose traffic goes through l, and counts it.
func runVia(t *testing.T, l *link, env []string, name string, args ...string) netRun {
	t.Helper()
	r0, c0 := l.counts()
	r := netRun{run: timed(t, env, name, args...)}
	r.requests, r.conns = l.counts()
	r.requests -= r0
	r.conns -= c0
	if i := strings.Index(r.out, `"fileBytes":`); i >= 0 {
		fmt.Sscanf(r.out[i+len(`"fileBytes":`):], "%d", &r.fileBytes)
	}
	return r
}

// netCase is a row of the network benchmark.
type netCase struct {
	rtt       int
	what      string
	nix, ours netRun
	ratio     float64
	note      string
}

func (c netCase) String() string {
	cell := func(r netRun, f func(netRun) string) string {
		if r.wall == 0 {
			return "–"
		}
		return f(r)
	}
	secs := func(r netRun) string { return fmt.Sprintf("%.2f s", r.wall.Seconds()) }
	req := func(r netRun) string { return strconv.FormatInt(r.requests, 10) }
	conn := func(r netRun) string { return strconv.FormatInt(r.conns, 10) }
	cpu := func(r netRun) string { return fmt.Sprintf("%.1f", r.cpu.Seconds()) }
	rss := func(r netRun) string { return strconv.FormatInt(r.maxRSS/1024, 10) }
	ratio := "–"
	if c.ratio > 0 {
		ratio = fmt.Sprintf("%.2fx", c.ratio)
	}
	return fmt.Sprintf("| %d ms | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s |",
		c.rtt, c.what, cell(c.nix, secs), cell(c.ours, secs), ratio,
		cell(c.nix, req), cell(c.ours, req), cell(c.nix, conn), cell(c.ours, conn),
		cell(c.nix, cpu), cell(c.ours, cpu), cell(c.nix, rss), cell(c.ours, rss), c.note)
}

// netHeader is the table's header, in the columns and more.
const netHeader = "| RTT | case | nix copy | nixbucket | ratio | requests nix / ours | connections nix / ours | CPU s nix / ours | peak RSS MiB nix / ours | notes |\n" +
	"|---|---|---|---|---|---|---|---|---|---|"

func envList(name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	return strings.Split(v, ",")
}

// rtts is $NIXBUCKET_BENCH_RTT as milliseconds (default 0,20,80).
func rtts(t *testing.T) []int {
	var ms []int
	for _, s := range envList("NIXBUCKET_BENCH_RTT", "0,20,80") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			t.Fatalf("NIXBUCKET_BENCH_RTT: %q is not a number of milliseconds", s)
		}
		ms = append(ms, n)
	}
	return ms
}

// TestBenchNet is `make bench`'s network mode: nixbucket pushing to a real
// S3 server (versitygw, keep-alive) against Nix pushing to an HTTP binary
// cache (`nix copy --to http://…`), both through identical links (a
// toxiproxy delay line and a counting proxy, see link), at each round-trip
// time of $NIXBUCKET_BENCH_RTT (ms, default 0,20,80).
// $NIXBUCKET_BENCH_CASES picks cases (default all: dag, noop, zstd, xz,
// mixed, big); $NIXBUCKET_BENCH_TOOLS=nixbucket skips Nix (for quick
// iterations: no ratios then); $NIXBUCKET_BENCH_PROFILE=DIR has every
// push write a CPU profile and a runtime trace into DIR, named by RTT and
// case (slower pushes: for finding bottlenecks, not for the table).
//
// Every fresh push is checked before its row counts: `nixbucket verify`
// on the cache Nix wrote (file://, the HTTP cache's directory) and on the
// bucket (directly, not through the link) must find every path of the
// closure, signed by the benchmark's key, and no fault. It prints a
// Markdown table, also written to bench-net.md with a line saying where
// and how it was measured (scripts/bench.sh copies it into the README).
func TestBenchNet(t *testing.T) {
	bin, corpus := inputs(t)
	cases := envList("NIXBUCKET_BENCH_CASES", "dag,noop,zstd,xz,mixed,big")
	want := func(c string) bool { return slices.Contains(cases, c) }
	tools := envList("NIXBUCKET_BENCH_TOOLS", "nix,nixbucket")
	withNix := slices.Contains(tools, "nix")
	ms := rtts(t)
	caption := captionStart(bin, ms, cases, tools)
	built := map[string]string{}
	for _, a := range []string{"medium", "dag", "big"} {
		built[a] = nixtest.Build(t, corpus, a)[0]
	}
	closure := func(paths ...string) int {
		return len(nixtest.Lines(t, "nix-store", append([]string{"-qR"}, paths...)...))
	}

	// Nix's side: an HTTP binary cache behind its own link.
	nixDir := t.TempDir()
	httpSrv := httptest.NewServer(fileCache{nixDir})
	t.Cleanup(httpSrv.Close)
	nixLink := newLink(t, httpSrv.URL)
	// nixbucket's side: versitygw behind an identical link.
	srv := s3test.Start(t, s3test.VersityGW)
	s3Link := newLink(t, srv.Endpoint)

	key := filepath.Join(t.TempDir(), "key")
	pub, err := execOut(nil, bin, "key", "generate", "--name", "bench-1", "--secret-key-file", key)
	if err != nil {
		t.Fatalf("key generate: %v: %s", err, pub)
	}
	pub = strings.TrimSpace(pub)
	ourEnv := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	// check fails the benchmark unless the cache at url holds exactly n
	// narinfos, all signed by the key, and verify finds no fault.
	check := func(who, url string, n int) {
		t.Helper()
		out, err := execOut(ourEnv, bin, "verify", "--json", "--cache", url, "--trusted-public-key", pub)
		var r verify.Report
		if jerr := json.Unmarshal([]byte(out), &r); err != nil || jerr != nil {
			t.Fatalf("%s: verify --cache %s: %v %v\n%s", who, url, err, jerr, out)
		}
		if r.NarInfos != n || r.Signed != n || len(r.Faults) > 0 {
			t.Fatalf("%s: verify --cache %s: %d narinfos, %d signed, faults %v; want %d, all signed, no fault",
				who, url, r.NarInfos, r.Signed, r.Faults, n)
		}
	}

	var rtt int
	progress := func(what, tool string, r netRun) {
		t.Logf("%3d ms  %-44s %-9s %8.2f s  %6d requests  %3d connections", rtt, what, tool, r.wall.Seconds(), r.requests, r.conns)
	}
	runs := 0
	newRun := func() string { runs++; return fmt.Sprintf("run-%d-%s", runs, s3test.RandomHex(4)) }
	// nixCopy copies paths to the HTTP cache under /run with a fresh
	// XDG_CACHE_HOME: a new runner, whose Nix has no cached narinfo
	// lookups.
	nixCopy := func(what, run, params string, paths ...string) netRun {
		u := nixLink.URL + "/" + run + "?secret-key=" + key
		if params != "" {
			u += "&" + params
		}
		r := runVia(t, nixLink, []string{"XDG_CACHE_HOME=" + t.TempDir()}, "nix", append([]string{"copy", "--to", u}, paths...)...)
		r.fileBytes = dirSize(t, filepath.Join(nixDir, run, "nar"))
		progress(what, "nix copy", r)
		return r
	}
	nixCheck := func(run string, paths ...string) {
		check("nix copy", "file://"+filepath.Join(nixDir, run), closure(paths...))
	}
	push := func(what, bucket, compression string, paths ...string) netRun {
		u := "s3://" + bucket + "?endpoint=" + s3Link.URL + "&region=" + s3test.Region
		a := []string{"push", "--json", "--cache", u, "--secret-key-file", key, "--compression", compression}
		env := ourEnv
		if dir := os.Getenv("NIXBUCKET_BENCH_PROFILE"); dir != "" {
			base := filepath.Join(dir, fmt.Sprintf("%dms-%s", rtt, slug(what)))
			env = append(slices.Clone(env), "NIXBUCKET_CPUPROFILE="+base+".pprof", "NIXBUCKET_TRACE="+base+".trace")
		}
		r := runVia(t, s3Link, env, bin, append(a, paths...)...)
		progress(what, "nixbucket", r)
		return r
	}
	ourCheck := func(bucket string, paths ...string) { check("nixbucket", srv.StoreURL(bucket), closure(paths...)) }
	// fresh pushes paths with each tool into a new place (Nix with the
	// URL parameters params, nixbucket with compression algo) and checks
	// both caches.
	fresh := func(c *netCase, params, algo string, paths ...string) {
		if withNix {
			run := newRun()
			c.nix = nixCopy(c.what, run, params, paths...)
			nixCheck(run, paths...)
		}
		b := srv.NewBucket(t)
		c.ours = push(c.what, b, algo, paths...)
		ourCheck(b, paths...)
	}

	var table []netCase
	add := func(c netCase) {
		if c.nix.wall > 0 && c.ours.wall > 0 {
			c.ratio = c.nix.wall.Seconds() / c.ours.wall.Seconds()
		}
		table = append(table, c)
		t.Log(c.String())
	}
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	sizes := func(nix, ours netRun) string {
		if !withNix {
			return "size " + mb(ours.fileBytes)
		}
		return fmt.Sprintf("size %s vs %s (%.2fx)", mb(nix.fileBytes), mb(ours.fileBytes), float64(ours.fileBytes)/float64(nix.fileBytes))
	}

	for _, rtt = range ms {
		nixLink.setRTT(t, rtt)
		s3Link.setRTT(t, rtt)
		var dagRun, dagBucket string
		if want("dag") || want("noop") {
			c := netCase{rtt: rtt, what: "`dag` fresh (2001 small paths, xz)"}
			if withNix {
				dagRun = newRun()
				c.nix = nixCopy(c.what, dagRun, "compression=xz", built["dag"])
				nixCheck(dagRun, built["dag"])
			}
			dagBucket = srv.NewBucket(t)
			c.ours = push(c.what, dagBucket, "xz", built["dag"])
			ourCheck(dagBucket, built["dag"])
			if want("dag") {
				add(c)
			}
		}
		if want("noop") {
			// The same run path and bucket as dag's, all present; a new
			// runner (Nix without its narinfo cache).
			c := netCase{rtt: rtt, what: "no-op, new runner (all present)"}
			// Best of three for both tools: a run of a few hundred ms is
			// at the mercy of the scheduler.
			if withNix {
				c.nix = bestNet(3, func() netRun { return nixCopy(c.what, dagRun, "compression=xz", built["dag"]) })
			}
			c.ours = bestNet(3, func() netRun { return push(c.what, dagBucket, "xz", built["dag"]) })
			add(c)
		}
		var zstdOurs netRun
		if want("zstd") || want("mixed") {
			c := netCase{rtt: rtt, what: "medium 216 MB, zstd"}
			fresh(&c, "compression=zstd", "zstd", built["medium"])
			zstdOurs = c.ours
			c.note = sizes(c.nix, c.ours)
			if want("zstd") {
				add(c)
			}
		}
		if want("xz") {
			c := netCase{rtt: rtt, what: "medium, xz (nix parallel-compression)"}
			fresh(&c, "compression=xz&parallel-compression=true", "xz", built["medium"])
			c.note = sizes(c.nix, c.ours)
			add(c)
		}
		if want("mixed") {
			// Small paths must not wait behind a large NAR: both closures
			// in one push, against the slower alone.
			c := netCase{rtt: rtt, what: "medium + dag together, zstd (nixbucket only)"}
			b := srv.NewBucket(t)
			dagZstd := push("dag alone, zstd", b, "zstd", built["dag"])
			ourCheck(b, built["dag"])
			b = srv.NewBucket(t)
			c.ours = push(c.what, b, "zstd", built["medium"], built["dag"])
			ourCheck(b, built["medium"], built["dag"])
			slower := max(dagZstd.wall, zstdOurs.wall)
			c.note = fmt.Sprintf("apart: dag %.2f s, medium %.2f s; together / slower = %.2f (aim ≤ 1.10)",
				dagZstd.wall.Seconds(), zstdOurs.wall.Seconds(), c.ours.wall.Seconds()/slower.Seconds())
			add(c)
		}
		if want("big") {
			c := netCase{rtt: rtt, what: "big (one 1 GiB file), zstd"}
			fresh(&c, "compression=zstd", "zstd", built["big"])
			c.note = fmt.Sprintf("peak RSS aim < 200 MiB: %d MiB", c.ours.maxRSS/1024)
			add(c)
		}
	}
	var b strings.Builder
	b.WriteString(caption + loadAverage() + " at the end.")
	if l, err := strconv.ParseFloat(loadAverage(), 64); err == nil && l > float64(runtime.NumCPU()) {
		b.WriteString(" **A loaded machine** (load above its cores): every time is slower than on an idle one; compare the two tools within this table only.")
	}
	b.WriteString("\n\n")
	b.WriteString(netHeader + "\n")
	for _, c := range table {
		b.WriteString(c.String() + "\n")
	}
	fmt.Print("\n" + b.String())
	if err := os.WriteFile("bench-net.md", []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}

// captionStart is the first part of the line above the table: when, on
// what, with which knobs, and how loaded the machine was (the table's
// times are only comparable within a run; its ratios, request and
// connection counts across runs).
func captionStart(bin string, ms []int, cases, tools []string) string {
	nixV, _ := execOut(nil, "nix", "--version")
	ourV, _ := execOut(nil, bin, "version")
	var rs []string
	for _, m := range ms {
		rs = append(rs, strconv.Itoa(m))
	}
	return fmt.Sprintf("Measured %s on %d cores with %s and %s (RTT %s ms; cases %s; tools %s); load average %s at the start, ",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), strings.TrimSpace(nixV), strings.TrimSpace(ourV),
		strings.Join(rs, ", "), strings.Join(cases, ", "), strings.Join(tools, ", "), loadAverage())
}

// loadAverage is the one-minute load average, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// slug is a case's name as a file name: its letters and digits, joined by
// dashes.
func slug(what string) string {
	f := strings.FieldsFunc(strings.ToLower(what), func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9')
	})
	return strings.Join(f, "-")
}

// bestNet runs f n times and keeps the fastest run.
func bestNet(n int, f func() netRun) netRun {
	var b netRun
	for i := range n {
		if r := f(); i == 0 || r.wall < b.wall {
			b = r
		}
	}
	return b
}
