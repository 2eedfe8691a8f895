package stats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/nixbucket/nixbucket/internal/browsertest"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

// measureScript, added at the end of a copy of the page, reads back what
// Chromium laid out: the text of every element with an id (innerText, as
// shown), the table rows, and each chart mark's position on screen, its
// tooltip and the axis it is drawn against. It leaves them as JSON in
// <pre id="measured">, for --dump-dom.
const measureScript = `<script>
(() => {
  const box = e => { const r = e.getBoundingClientRect();
    return {x: r.left + r.width / 2, y: r.top + r.height / 2, top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
  const shown = e => e ? (e.innerText ?? e.textContent).trim() : null;
  const cell = (tr, c) => { const e = tr.querySelector(c); return e ? {text: shown(e), title: e.getAttribute('title') || ''} : null; };
  const m = {ids: {}, series: [], kinds: [], roots: []};
  document.querySelectorAll('[id]').forEach(e => {
    m.ids[e.id] = {text: shown(e), title: e.getAttribute('title') || '', rects: e.getClientRects().length};
  });
  m.axisX = box(document.getElementById('axis-x'));
  m.axisY = box(document.getElementById('axis-y'));
  m.svg = box(document.querySelector('#chart svg'));
  document.querySelectorAll('#chart [data-series]').forEach(g => m.series.push({
    name: g.dataset.series, max: g.dataset.max,
    points: [...g.querySelectorAll('circle')].map(c => Object.assign(
      {time: c.dataset.time, title: c.querySelector('title').textContent, fill: getComputedStyle(c).fill}, box(c))),
  }));
  document.querySelectorAll('tr[data-kind]').forEach(tr => m.kinds.push({
    kind: tr.dataset.kind, objects: cell(tr, '.objects'), bytes: cell(tr, '.bytes')}));
  document.querySelectorAll('tr[data-root]').forEach(tr => m.roots.push({
    name: tr.dataset.root, manifests: cell(tr, '.manifests'), paths: cell(tr, '.paths'),
    narSize: cell(tr, '.nar-size'), stored: cell(tr, '.stored'), pinned: cell(tr, '.pinned')}));
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(m);
  document.body.appendChild(pre);
})();
</script>`

// shown is an element's text as displayed, and its tooltip.
type shown struct {
	Text  string `json:"text"`
	Title string `json:"title"`
	Rects int    `json:"rects"`
}

// box is an element's place on screen, in CSS pixels.
type box struct {
	X, Y, Top, Bottom, Left, Right float64
}

// measured is what measureScript reports.
type measured struct {
	IDs          map[string]shown
	AxisX, AxisY box
	SVG          box
	Series       []struct {
		Name   string
		Max    string
		Points []struct {
			box
			Time, Title, Fill string
		}
	}
	Kinds []struct {
		Kind           string
		Objects, Bytes *shown
	}
	Roots []struct {
		Name                                      string
		Manifests, Paths, NarSize, Stored, Pinned *shown
	}
}

// measure renders page in headless Chromium and returns what it drew.
func measure(t *testing.T, page []byte) measured {
	t.Helper()
	f := filepath.Join(t.TempDir(), "measure.html")
	doc := bytes.Replace(page, []byte("</body>"), []byte(measureScript+"</body>"), 1)
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	dom := browsertest.Chromium(t, "--window-size=1000,1400", "--dump-dom", "file://"+f)
	sm := regexp.MustCompile(`(?s)<pre id="measured">(.*?)</pre>`).FindStringSubmatch(dom)
	if sm == nil {
		t.Fatalf("the page's measurements are missing from Chromium's DOM (did the script run?):\n%.2000s", dom)
	}
	var m measured
	if err := json.Unmarshal([]byte(html.UnescapeString(sm[1])), &m); err != nil {
		t.Fatalf("parsing the measurements: %v", err)
	}
	return m
}

// statsJSON is the report as `nixbucket stats --json` prints it (the CLI
// encodes the Report with encoding/json), decoded without the Report type:
// the page is compared with the figures a script would read.
type statsJSON struct {
	Time        time.Time
	Total       jsonCount
	ByKind      map[string]jsonCount
	StorePaths  int64
	Lists, Gets int64
	Roots       []struct {
		Name             string
		Pinned           bool
		Manifests, Paths int64
		NarSize          uint64
		StoredBytes      int64
	}
	KnownPaths                  int64
	UnaccountedNars             jsonCount
	MissingNars                 int64
	UnfinishedUploads           int64
	Reclaimable, ReclaimableNow jsonCount
}

type jsonCount struct{ Objects, Bytes int64 }

func statsJSONOf(t *testing.T, r *stats.Report) ([]byte, statsJSON) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(r); err != nil {
		t.Fatal(err)
	}
	var j statsJSON
	if err := json.Unmarshal(buf.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	// Each figure compared is one --json has, under the name it has there.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "total", "byKind", "storePaths", "lists", "gets", "roots", "knownPaths",
		"unaccountedNars", "missingNars", "unfinishedUploads", "reclaimable", "reclaimableNow"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("stats --json has no %q", k)
		}
	}
	return buf.Bytes(), j
}

// renderPage records two history points, writes the page of r and that
// history, renders it in headless Chromium and checks that what it shows
// is what `stats --json` says: every figure in the text and tables, and
// every point of the chart, by its tooltip and by where it is drawn
// against the axis.
func renderPage(t *testing.T, b s3cache.Bucket, r *stats.Report) {
	// Two earlier points, as weekly `stats --record` runs would leave,
	// the two series growing apart so that each line is seen on its own.
	now := stats.PointOf(r)
	p := now
	p.Time, p.Bytes, p.NarInfos = now.Time.Add(-14*24*time.Hour), now.Bytes/3, now.NarInfos/2
	if _, err := stats.Record(context.Background(), b, p); err != nil {
		t.Fatal(err)
	}
	p.Time, p.Bytes, p.NarInfos = now.Time.Add(-7*24*time.Hour), now.Bytes*2/3, now.NarInfos*3/5
	hist, err := stats.Record(context.Background(), b, p)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history after two records: %v, %v", hist, err)
	}
	if got, err := stats.History(context.Background(), b); err != nil || len(got) != 2 || got[1].Bytes != p.Bytes {
		t.Fatalf("History = %+v, %v", got, err)
	}
	var page bytes.Buffer
	if err := stats.WriteHTML(&page, r, hist); err != nil {
		t.Fatal(err)
	}
	if s := page.String(); strings.Contains(s, "http://") || strings.Contains(s, "https://") || strings.Contains(s, "src=") {
		t.Error("the page refers to external assets")
	}
	raw, j := statsJSONOf(t, r)
	m := measure(t, page.Bytes())
	checkFigures(t, m, j)
	checkChart(t, m, j, hist)
	if t.Failed() {
		t.Logf("stats --json: %s", raw)
	}
	if out := os.Getenv("NIXBUCKET_STATS_SCREENSHOT"); out != "" {
		f := filepath.Join(t.TempDir(), "stats.html")
		if err := os.WriteFile(f, page.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		browsertest.Chromium(t, "--screenshot="+out, "--window-size=900,900", "file://"+f)
	}
}

// checkFigures compares the page's text and tables with the JSON.
func checkFigures(t *testing.T, m measured, j statsJSON) {
	t.Helper()
	count := func(n int64) shown { return shown{Text: strconv.FormatInt(n, 10)} }
	size := func(n int64) shown {
		return shown{Text: humanize.IBytes(uint64(max(n, 0))), Title: fmt.Sprintf("%d bytes", n)}
	}
	same := func(what string, got *shown, want shown) {
		t.Helper()
		switch {
		case got == nil:
			t.Errorf("%s: not on the page", what)
		case got.Text != want.Text || got.Title != want.Title:
			t.Errorf("%s: the page shows %q (tooltip %q), stats --json says %q (%q)", what, got.Text, got.Title, want.Text, want.Title)
		}
	}
	for _, c := range []struct {
		id   string
		want shown
	}{
		{"total-objects", count(j.Total.Objects)},
		{"total-bytes", size(j.Total.Bytes)},
		{"store-paths", count(j.StorePaths)},
		{"lists", count(j.Lists)},
		{"gets", count(j.Gets)},
		{"known-paths", count(j.KnownPaths)},
		{"unaccounted-objects", count(j.UnaccountedNars.Objects)},
		{"unaccounted-bytes", size(j.UnaccountedNars.Bytes)},
		{"missing-nars", count(j.MissingNars)},
		{"uploads", count(j.UnfinishedUploads)},
		{"reclaimable-objects", count(j.Reclaimable.Objects)},
		{"reclaimable-bytes", size(j.Reclaimable.Bytes)},
		{"reclaimable-now-objects", count(j.ReclaimableNow.Objects)},
		{"reclaimable-now-bytes", size(j.ReclaimableNow.Bytes)},
	} {
		got, ok := m.IDs[c.id]
		if !ok {
			same(c.id, nil, c.want)
			continue
		}
		if got.Rects == 0 {
			t.Errorf("%s is not displayed", c.id)
		}
		got.Rects = 0
		same(c.id, &got, c.want)
	}
	// Every kind row is the JSON's; a kind with objects has its row.
	rows := map[string]bool{}
	for _, k := range m.Kinds {
		rows[k.Kind] = true
		c := j.ByKind[k.Kind] // a kind --json leaves out has none
		same("objects of kind "+k.Kind, k.Objects, count(c.Objects))
		same("bytes of kind "+k.Kind, k.Bytes, size(c.Bytes))
	}
	for k, c := range j.ByKind {
		if c.Objects > 0 && !rows[k] {
			t.Errorf("kind %s: %d objects in stats --json, no row on the page", k, c.Objects)
		}
	}
	if len(m.Roots) != len(j.Roots) {
		t.Errorf("the page lists %d roots, stats --json %d", len(m.Roots), len(j.Roots))
	}
	for i := range min(len(m.Roots), len(j.Roots)) {
		got, want := m.Roots[i], j.Roots[i]
		if got.Name != want.Name {
			t.Errorf("root %d: the page shows %q, stats --json %q", i, got.Name, want.Name)
			continue
		}
		pinned := shown{}
		if want.Pinned {
			pinned.Text = "yes"
		}
		same("manifests of root "+want.Name, got.Manifests, count(want.Manifests))
		same("paths of root "+want.Name, got.Paths, count(want.Paths))
		same("NAR size of root "+want.Name, got.NarSize, shown{Text: humanize.IBytes(want.NarSize), Title: fmt.Sprintf("%d bytes", want.NarSize)})
		same("stored bytes of root "+want.Name, got.Stored, size(want.StoredBytes))
		same("pinned of root "+want.Name, got.Pinned, pinned)
	}
}

// titleValue is the figure in a point's tooltip ("2006-01-02 15:04 UTC: N …").
var titleValue = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d UTC: (\d+) `)

// checkChart reads each series' points back: the figure in its tooltip
// and the value its height on screen stands for, against the y axis and
// the series' top value (the label at the axis' top), must be the
// history's and, last, the JSON's.
func checkChart(t *testing.T, m measured, j statsJSON, hist []stats.Point) {
	t.Helper()
	times := []time.Time{hist[0].Time, hist[1].Time, j.Time}
	want := map[string][]int64{
		"bytes":    {hist[0].Bytes, hist[1].Bytes, j.Total.Bytes},
		"narinfos": {int64(hist[0].NarInfos), int64(hist[1].NarInfos), j.StorePaths},
	}
	// The legend under the chart: blue is bytes, orange narinfos.
	hue := map[string]string{"bytes": "blue", "narinfos": "orange"}
	topLabel := map[string]func(int64) string{
		"bytes":    func(v int64) string { return humanize.IBytes(uint64(v)) },
		"narinfos": func(v int64) string { return fmt.Sprintf("%d narinfos", v) },
	}
	height := m.AxisY.Bottom - m.AxisY.Top
	if height < 50 || math.Abs(m.AxisX.Y-m.AxisY.Bottom) > 1 {
		t.Fatalf("axes: y from %.1f to %.1f, x at %.1f: not a chart", m.AxisY.Top, m.AxisY.Bottom, m.AxisX.Y)
	}
	if len(m.Series) != len(want) {
		t.Fatalf("the chart has %d series, want %d (bytes, narinfos)", len(m.Series), len(want))
	}
	for _, s := range m.Series {
		values, ok := want[s.Name]
		if !ok {
			t.Errorf("series %q: not a figure of stats", s.Name)
			continue
		}
		top := slices.Max(values)
		if s.Max != strconv.FormatInt(top, 10) {
			t.Errorf("series %s: drawn against a top of %s, its largest value is %d", s.Name, s.Max, top)
		}
		if label := m.IDs["max-"+s.Name]; label.Text != topLabel[s.Name](top) {
			t.Errorf("series %s: the axis top reads %q, want %q", s.Name, label.Text, topLabel[s.Name](top))
		}
		if len(s.Points) != len(values) {
			t.Errorf("series %s: %d points drawn, want %d", s.Name, len(s.Points), len(values))
			continue
		}
		for i, p := range s.Points {
			what := fmt.Sprintf("series %s, point %d", s.Name, i)
			if got, err := time.Parse(time.RFC3339Nano, p.Time); err != nil || !got.Equal(times[i]) {
				t.Errorf("%s: time %q, want %v", what, p.Time, times[i])
			}
			tm := titleValue.FindStringSubmatch(p.Title)
			if tm == nil || tm[1] != strconv.FormatInt(values[i], 10) || !strings.HasPrefix(p.Title, times[i].UTC().Format("2006-01-02 15:04 UTC")) {
				t.Errorf("%s: tooltip %q, want %s: %d", what, p.Title, times[i].UTC().Format("2006-01-02 15:04 UTC"), values[i])
			}
			// The value its height stands for, to within a pixel.
			drawn := float64(top) * (m.AxisY.Bottom - p.Y) / height
			if math.Abs(drawn-float64(values[i])) > float64(top)/height {
				t.Errorf("%s: drawn at %.1f px above the axis, which stands for %.0f; stats says %d", what, m.AxisY.Bottom-p.Y, drawn, values[i])
			}
			if p.Left < m.SVG.Left || p.Right > m.SVG.Right || p.Top < m.SVG.Top || p.Bottom > m.SVG.Bottom {
				t.Errorf("%s: drawn outside the chart", what)
			}
			if got := hueOf(p.Fill); got != hue[s.Name] {
				t.Errorf("%s: drawn in %s (%s), the legend says %s", what, got, p.Fill, hue[s.Name])
			}
			if i > 0 && p.X <= s.Points[i-1].X {
				t.Errorf("%s: drawn left of the point before it", what)
			}
		}
		// The first and last points sit at the ends of the time axis.
		first, last := s.Points[0], s.Points[len(s.Points)-1]
		if math.Abs(first.X-m.AxisX.Left) > 1 || math.Abs(last.X-m.AxisX.Right) > 1 {
			t.Errorf("series %s: points span %.1f to %.1f px, the time axis %.1f to %.1f", s.Name, first.X, last.X, m.AxisX.Left, m.AxisX.Right)
		}
	}
	if got := m.IDs["first-date"].Text; got != times[0].UTC().Format("2006-01-02") {
		t.Errorf("the time axis starts at %q, want %s", got, times[0].UTC().Format("2006-01-02"))
	}
	if got := m.IDs["last-date"].Text; got != times[2].UTC().Format("2006-01-02") {
		t.Errorf("the time axis ends at %q, want %s", got, times[2].UTC().Format("2006-01-02"))
	}
}

// hueOf names a computed CSS colour ("rgb(31, 119, 180)") roughly: blue,
// orange or other.
func hueOf(css string) string {
	var r, g, b int
	if _, err := fmt.Sscanf(css, "rgb(%d, %d, %d)", &r, &g, &b); err != nil {
		return "unreadable"
	}
	switch {
	case b > r+60 && b > g:
		return "blue"
	case r > b+60 && r > g && g > b:
		return "orange"
	}
	return "other"
}
