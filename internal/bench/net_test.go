//go:build bench

package bench

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
)

// netRun is one timed command with its resource use and what it cost on
// the network.
type netRun struct {
	wall           time.Duration
	cpu            time.Duration // user + system
	maxRSS         int64         // KiB
	out            string
	requests       int64
	conns          int64
	fileBytes      int64
	failed, stderr string
}

// runVia runs a command whose traffic goes through l, and counts it.
func runVia(t *testing.T, l *link, env []string, name string, args ...string) netRun {
	t.Helper()
	res := filepath.Join(t.TempDir(), "res")
	if name == "nix" {
		args = append(slices.Clone(nixtest.Features), args...)
	}
	r0, c0 := l.counts()
	cmd := timedCmd(t, env, res, name, args...)
	start := time.Now()
	err := cmd.Run()
	r := netRun{wall: time.Since(start), out: cmd.Stdout.(*strings.Builder).String()}
	r.requests, r.conns = l.counts()
	r.requests -= r0
	r.conns -= c0
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, cmd.Stderr.(*strings.Builder).String())
	}
	if b, err := os.ReadFile(res); err == nil {
		var user, sys float64
		fmt.Sscanf(strings.TrimSpace(string(b)), "%d %f %f", &r.maxRSS, &user, &sys)
		r.cpu = time.Duration((user + sys) * float64(time.Second))
	}
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

// TestBenchNet is `make bench`'s network mode: nixbucket pushing to a real
// S3 server (versitygw, keep-alive) against Nix pushing to an HTTP binary
// cache (`nix copy --to http://…`), both through the same latency proxy,
// at each round-trip time of $NIXBUCKET_BENCH_RTT (ms, default 0,20,80).
// $NIXBUCKET_BENCH_CASES picks cases (default all: dag, noop, zstd, xz,
// mixed, big); $NIXBUCKET_BENCH_TOOLS=nixbucket skips Nix (for quick
// iterations: no ratios then). It prints a Markdown table, also written to
// bench-net.md.
func TestBenchNet(t *testing.T) {
	bin := os.Getenv("NIXBUCKET_BIN")
	if bin == "" {
		t.Fatal("NIXBUCKET_BIN is not set: run `make bench`")
	}
	corpus := os.Getenv("NIXBUCKET_CORPUS")
	if corpus == "" {
		corpus = "../../../shared/bench/corpus.nix"
	}
	corpus, _ = filepath.Abs(corpus)
	cases := envList("NIXBUCKET_BENCH_CASES", "dag,noop,zstd,xz,mixed,big")
	want := func(c string) bool { return slices.Contains(cases, c) }
	withNix := slices.Contains(envList("NIXBUCKET_BENCH_TOOLS", "nix,nixbucket"), "nix")
	built := map[string]string{}
	for _, a := range []string{"medium", "dag", "big"} {
		built[a] = nixtest.Build(t, corpus, a)[0]
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
	if out, err := execOut(nil, bin, "key", "generate", "--name", "bench-1", "--secret-key-file", key); err != nil {
		t.Fatalf("key generate: %v: %s", err, out)
	}
	ourEnv := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	runs := 0
	newRun := func() string { runs++; return fmt.Sprintf("run-%d-%s", runs, s3test.RandomHex(4)) }
	nixCopy := func(run, params string, paths ...string) netRun {
		// A fresh XDG_CACHE_HOME: a new runner, whose Nix has no cached
		// narinfo lookups.
		env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
		u := nixLink.URL + "/" + run + "?secret-key=" + key
		if params != "" {
			u += "&" + params
		}
		r := runVia(t, nixLink, env, "nix", append([]string{"copy", "--to", u}, paths...)...)
		r.fileBytes = dirSize(t, filepath.Join(nixDir, run, "nar"))
		return r
	}
	push := func(bucket string, args []string, paths ...string) netRun {
		u := "s3://" + bucket + "?endpoint=" + s3Link.URL + "&region=" + s3test.Region
		a := append([]string{"push", "--json", "--cache", u, "--secret-key-file", key}, args...)
		return runVia(t, s3Link, ourEnv, bin, append(a, paths...)...)
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

	for _, rttStr := range envList("NIXBUCKET_BENCH_RTT", "0,20,80") {
		rtt, err := strconv.Atoi(strings.TrimSpace(rttStr))
		if err != nil {
			t.Fatalf("NIXBUCKET_BENCH_RTT: %v", err)
		}
		nixLink.setRTT(t, rtt)
		s3Link.setRTT(t, rtt)
		var dagRun, dagBucket string
		var dagOurs netRun
		if want("dag") || want("noop") || want("mixed") {
			c := netCase{rtt: rtt, what: fmt.Sprintf("`dag` fresh (2001 small paths, xz)")}
			if withNix {
				dagRun = newRun()
				c.nix = nixCopy(dagRun, "compression=xz", built["dag"])
			}
			dagBucket = srv.NewBucket(t)
			c.ours = push(dagBucket, nil, built["dag"])
			dagOurs = c.ours
			if want("dag") {
				add(c)
			}
		}
		if want("noop") {
			c := netCase{rtt: rtt, what: "no-op, new runner (all present)"}
			if withNix {
				c.nix = nixCopy(dagRun, "compression=xz", built["dag"])
			}
			c.ours = push(dagBucket, nil, built["dag"])
			add(c)
		}
		var zstdOurs netRun
		if want("zstd") || want("mixed") {
			c := netCase{rtt: rtt, what: "medium 216 MB, zstd"}
			if withNix {
				c.nix = nixCopy(newRun(), "compression=zstd", built["medium"])
			}
			c.ours = push(srv.NewBucket(t), []string{"--compression", "zstd"}, built["medium"])
			zstdOurs = c.ours
			c.note = "size " + mb(c.ours.fileBytes)
			if withNix {
				c.note = fmt.Sprintf("size %s vs %s", mb(c.nix.fileBytes), mb(c.ours.fileBytes))
			}
			if want("zstd") {
				add(c)
			}
		}
		if want("xz") {
			c := netCase{rtt: rtt, what: "medium, xz (nix parallel-compression)"}
			if withNix {
				c.nix = nixCopy(newRun(), "compression=xz&parallel-compression=true", built["medium"])
			}
			c.ours = push(srv.NewBucket(t), []string{"--compression", "xz"}, built["medium"])
			c.note = "size " + mb(c.ours.fileBytes)
			if withNix {
				c.note = fmt.Sprintf("size %s vs %s (%.2fx)", mb(c.nix.fileBytes), mb(c.ours.fileBytes), float64(c.ours.fileBytes)/float64(c.nix.fileBytes))
			}
			add(c)
		}
		if want("mixed") {
			// Small paths must not wait behind a large NAR: both closures
			// in one push, against the slower alone.
			dagZstd := push(srv.NewBucket(t), []string{"--compression", "zstd"}, built["dag"])
			c := netCase{rtt: rtt, what: "medium + dag together, zstd (nixbucket only)"}
			c.ours = push(srv.NewBucket(t), []string{"--compression", "zstd"}, built["medium"], built["dag"])
			slower := max(dagZstd.wall, zstdOurs.wall)
			c.note = fmt.Sprintf("apart: dag %.2f s, medium %.2f s; together / slower = %.2f (aim ≤ 1.10)",
				dagZstd.wall.Seconds(), zstdOurs.wall.Seconds(), c.ours.wall.Seconds()/slower.Seconds())
			_ = dagOurs
			add(c)
		}
		if want("big") {
			c := netCase{rtt: rtt, what: "big (one 1 GiB file), zstd"}
			if withNix {
				c.nix = nixCopy(newRun(), "compression=zstd", built["big"])
			}
			c.ours = push(srv.NewBucket(t), []string{"--compression", "zstd"}, built["big"])
			c.note = fmt.Sprintf("peak RSS aim < 200 MiB: %d MiB", c.ours.maxRSS/1024)
			add(c)
		}
	}
	var b strings.Builder
	b.WriteString(netHeader + "\n")
	for _, c := range table {
		b.WriteString(c.String() + "\n")
	}
	fmt.Print("\n" + b.String())
	if err := os.WriteFile("bench-net.md", []byte(b.String()), 0o644); err != nil {
		t.Log(err)
	}
}
