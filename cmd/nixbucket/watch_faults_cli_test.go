package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

// TestWatchResetsAndMetrics runs watch behind toxiproxy: while every
// connection is reset, the batch's requests are retried with a WARN line
// each, the batch fails and is retried later (a line says so); once the
// resets stop, it is pushed. The metrics pass promtool check metrics and
// count what was pushed: the closure's paths and NAR bytes (as Nix
// reports them), the batches, the failures, an empty queue, the last
// success. SIGTERM then ends watch with exit 0.
func TestWatchResetsAndMetrics(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	paths := watchSamplePaths(t, "watch-resets", "app", "dag")
	x := s3test.NewToxi(t, f.srv.Endpoint)
	start := time.Now()
	p := startWatch(t, creds(f.srv), append(append([]string{}, tight...),
		f.args(x.StoreURL(f.bucket), "--metrics-listen", "127.0.0.1:0", "--batch-wait", "10ms")...)...)
	url := watchMetricsLine.FindStringSubmatch(p.waitFor(t, watchMetricsLine, 1))[1]
	started := p.waitFor(t, watchStarted, 1)
	if want := `msg="watching the queue" cache="s3://` + f.bucket + "?endpoint=" + x.Endpoint; !strings.Contains(started, want) {
		t.Errorf("the starting line does not name the cache (%s):\n%s", want, started)
	}
	x.Toxic(t, "reset", "reset_peer", "downstream", map[string]any{"timeout": 0})
	f.add(t, paths...)
	out := p.waitFor(t, regexp.MustCompile(`level=WARN msg="batch failed; will retry" paths=2 attempt=1 retry_in=`), 1)
	if !strings.Contains(out, "(attempt 2)") {
		t.Errorf("no WARN line for a request's retry:\n%s", out)
	}
	x.RemoveToxic(t, "reset")
	// The failed batch of two is halved: two batches of one follow.
	out = p.waitFor(t, watchBatchPushed, 2)
	if strings.Count(out, `msg="batch pushed" paths=1 `) != 2 || strings.Count(out, " attempt=2\n") != 2 {
		t.Errorf("want two batches of one path, each its second attempt:\n%s", out)
	}
	f.assertArrived(t, paths...)

	body := scrapeMetrics(t, url)
	promtoolCheck(t, "watch's /metrics", body)
	// Every watch series is labelled with the cache, as serve's are.
	u, err := s3cache.ParseURL(x.StoreURL(f.bucket))
	if err != nil {
		t.Fatal(err)
	}
	label := `cache="` + stats.CacheLabel(u) + `"`
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "nixbucket_watch_") && !strings.Contains(line, label) {
			t.Errorf("series without %s: %s", label, line)
		}
	}
	body = strings.NewReplacer("{"+label+"}", "", label+",", "", ","+label, "").Replace(body)
	closure := nixtest.Lines(t, "nix-store", append([]string{"-qR"}, paths...)...)
	var narBytes uint64
	for _, info := range nixtest.PathInfos(t, closure...) {
		narBytes += info.NarSize
	}
	failures := watchMetric(t, body, "nixbucket_watch_push_failures_total")
	for name, want := range map[string]float64{
		"nixbucket_watch_pushed_paths_total":                       float64(len(closure)),
		"nixbucket_watch_present_paths_total":                      0,
		"nixbucket_watch_pushed_nar_bytes_total":                   float64(narBytes),
		"nixbucket_watch_batches_total":                            2,
		"nixbucket_watch_failed_entries_total":                     0,
		`nixbucket_watch_queue_entries{state="pending"}`:           0,
		`nixbucket_watch_queue_entries{state="inflight"}`:          0,
		`nixbucket_watch_queue_entries{state="failed"}`:            0,
		"nixbucket_watch_queue_done_total":                         2,
		"nixbucket_watch_batch_duration_seconds_count":             2 + failures,
		"nixbucket_watch_store_paths_queued_total":                 0,
		`nixbucket_watch_batch_duration_seconds_bucket{le="+Inf"}`: 2 + failures,
	} {
		if got := watchMetric(t, body, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if failures < 1 {
		t.Errorf("push failures = %v, want at least 1", failures)
	}
	if up := watchMetric(t, body, "nixbucket_watch_uploaded_bytes_total"); up <= 0 {
		t.Errorf("uploaded bytes = %v", up)
	}
	last := watchMetric(t, body, "nixbucket_watch_last_success_timestamp_seconds")
	if st := f.status(t); last != float64(st.LastSuccess.UnixNano())/1e9 || st.LastSuccess.Before(start) {
		t.Errorf("last success %v, the queue's %v (watch started %v)", last, st.LastSuccess, start)
	}
	for _, help := range []string{"pushed_paths_total", "queue_entries", "batch_duration_seconds", "last_success_timestamp_seconds"} {
		if !strings.Contains(body, "# HELP nixbucket_watch_"+help+" ") {
			t.Errorf("no HELP for nixbucket_watch_%s", help)
		}
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("watch after SIGTERM: exit %d:\n%s", code, p.output())
	}
	t.Logf("watch's output:\n%s", p.output())
}

// scrapeMetrics GETs the metrics at url (watch's or serve's /metrics).
func scrapeMetrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// metric is the value of the sample name (with its labels, as printed)
// in a text exposition.
func watchMetric(t *testing.T, body, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sample %s in:\n%s", name, body)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("sample %s: %v", name, err)
	}
	return v
}
