package stats

import (
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// WriteHTML writes one self-contained page (no external assets): the
// report's figures and an inline SVG chart of the stored bytes and
// narinfos over history (the report itself is the last point when
// history does not end with it).
func WriteHTML(w io.Writer, r *Report, history []Point) error {
	pts := append([]Point(nil), history...)
	if !slices.ContainsFunc(pts, func(p Point) bool { return p.Time.Equal(r.Time) }) {
		pts = append(pts, PointOf(r))
	}
	slices.SortStableFunc(pts, func(a, b Point) int { return a.Time.Compare(b.Time) })
	data := struct {
		R     *Report
		Kinds []string
		Chart template.HTML
		N     int
	}{r, Kinds, chart(pts), len(pts)}
	return page.Execute(w, data)
}

var page = template.Must(template.New("stats").Funcs(template.FuncMap{
	"bytes":  func(n int64) string { return humanize.IBytes(uint64(max(n, 0))) },
	"ubytes": humanize.IBytes,
	"count":  func(c map[string]Count, k string) Count { return c[k] },
	"when":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"pct":    func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nixbucket cache stats</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}svg{border:1px solid #ccc;background:#fafafa}
.note{color:#555;font-size:.9em}
</style></head><body>
<h1>Cache stats</h1>
<p>Measured {{when .R.Time}}: <b id="total-objects">{{.R.Total.Objects}}</b> objects, <b id="total-bytes" title="{{.R.Total.Bytes}} bytes">{{bytes .R.Total.Bytes}}</b>;
<b id="store-paths">{{.R.Paths}}</b> store paths. <span id="lists">{{.R.Lists}}</span> LIST and <span id="gets">{{.R.Gets}}</span> GET requests.</p>
<h2>Growth</h2>
<div id="chart">{{.Chart}}</div>
<p class="note">{{.N}} points (recorded by stats --record, and this one). Blue: stored bytes; orange, dashed: narinfos (each scaled to its own top).</p>
<h2>Objects by kind</h2>
<table><tr><th>kind</th><th>objects</th><th>bytes</th></tr>
{{range .Kinds}}{{$c := count $.R.ByKind .}}<tr data-kind="{{.}}"><td>{{.}}</td><td class="objects">{{$c.Objects}}</td><td class="bytes" title="{{$c.Bytes}} bytes">{{bytes $c.Bytes}}</td></tr>
{{end}}</table>
<h2>Roots</h2>
<table><tr><th>root</th><th>manifests</th><th>newest</th><th>paths</th><th>NAR size</th><th>stored</th><th>pinned</th></tr>
{{range .R.Roots}}<tr data-root="{{.Name}}"><td>{{.Name}}</td><td class="manifests">{{.Manifests}}</td><td>{{when .Newest}}</td><td class="paths">{{.Paths}}</td><td class="nar-size" title="{{.NarSize}} bytes">{{ubytes .NarSize}}</td><td class="stored" title="{{.StoredBytes}} bytes">{{bytes .StoredBytes}}</td><td class="pinned">{{if .Pinned}}yes{{end}}</td></tr>
{{else}}<tr><td colspan="7">no roots</td></tr>{{end}}</table>
<h2>Health</h2>
<table>
<tr><td>compression (stored / NarSize, <span id="known-paths">{{.R.KnownPaths}}</span> paths known)</td><td id="compression-ratio">{{pct .R.Ratio}}</td></tr>
<tr><td>NARs no narinfo refers to</td><td><span id="unaccounted-objects">{{.R.Unaccounted.Objects}}</span> (<span id="unaccounted-bytes" title="{{.R.Unaccounted.Bytes}} bytes">{{bytes .R.Unaccounted.Bytes}}</span>)</td></tr>
<tr><td>narinfos whose NAR is missing</td><td id="missing-nars">{{.R.MissingNARs}}</td></tr>
<tr><td>references left to upstream (push --skip-signed-by)</td><td id="upstream-references">{{.R.UpstreamReferences}}</td></tr>
<tr><td>unfinished multipart uploads</td><td id="uploads">{{.R.Uploads}}</td></tr>
<tr><td>gc would reclaim (gc's own plan, every manifest kept){{if .R.GCRefuses}}: gc refuses to run, see the notes{{end}}</td><td><span id="reclaimable-objects">{{.R.Reclaimable.Objects}}</span> (<span id="reclaimable-bytes" title="{{.R.Reclaimable.Bytes}} bytes">{{bytes .R.Reclaimable.Bytes}}</span>), of which <span id="reclaimable-now-objects">{{.R.ReclaimableNow.Objects}}</span> (<span id="reclaimable-now-bytes" title="{{.R.ReclaimableNow.Bytes}} bytes">{{bytes .R.ReclaimableNow.Bytes}}</span>) by the next run</td></tr>
</table>
{{range .R.Notes}}<p class="note">{{.}}</p>{{end}}
</body></html>
`))

// chart draws stored bytes and narinfos over time as an SVG line chart.
// Each mark says its figure: a point's <title> (its tooltip) has the time
// and the exact value, each series carries the value its axis top stands
// for (data-max), so what is drawn can be read back and checked.
func chart(pts []Point) template.HTML {
	const w, h, pad = 720.0, 260.0, 50.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="cache growth">`, w, h, w, h)
	t0, t1 := pts[0].Time, pts[len(pts)-1].Time
	span := t1.Sub(t0).Seconds()
	x := func(t time.Time) float64 {
		if span <= 0 {
			return w / 2
		}
		return pad + (w-2*pad)*t.Sub(t0).Seconds()/span
	}
	var maxBytes int64
	maxInfos := 0
	for _, p := range pts {
		maxBytes = max(maxBytes, p.Bytes)
		maxInfos = max(maxInfos, p.NarInfos)
	}
	y := func(v, top float64) float64 {
		if top <= 0 {
			return h - pad
		}
		return h - pad - (h-2*pad)*v/top
	}
	esc := template.HTMLEscapeString
	fmt.Fprintf(&b, `<line id="axis-x" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/>`, pad, h-pad, w-pad, h-pad)
	fmt.Fprintf(&b, `<line id="axis-y" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/>`, pad, pad, pad, h-pad)
	fmt.Fprintf(&b, `<text id="max-bytes" x="%.0f" y="%.0f" font-size="12" fill="#1f77b4">%s</text>`, pad+4, pad-8, esc(humanize.IBytes(uint64(maxBytes))))
	fmt.Fprintf(&b, `<text id="max-narinfos" x="%.0f" y="%.0f" font-size="12" text-anchor="end" fill="#ff7f0e">%d narinfos</text>`, w-pad, pad-8, maxInfos)
	fmt.Fprintf(&b, `<text id="first-date" x="%.0f" y="%.0f" font-size="12">%s</text>`, pad, h-pad+18, t0.UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, `<text id="last-date" x="%.0f" y="%.0f" font-size="12" text-anchor="end">%s</text>`, w-pad, h-pad+18, t1.UTC().Format("2006-01-02"))
	for _, s := range []struct {
		id, color, dash string
		v               func(Point) int64
		label           func(Point) string
		top             int64
	}{
		{"bytes", "#1f77b4", "none", func(p Point) int64 { return p.Bytes },
			func(p Point) string {
				return fmt.Sprintf("%d bytes stored (%s)", p.Bytes, humanize.IBytes(uint64(max(p.Bytes, 0))))
			}, maxBytes},
		{"narinfos", "#ff7f0e", "6 4", func(p Point) int64 { return int64(p.NarInfos) },
			func(p Point) string { return fmt.Sprintf("%d narinfos", p.NarInfos) }, int64(maxInfos)},
	} {
		top := float64(s.top)
		var line []string
		for _, p := range pts {
			line = append(line, fmt.Sprintf("%.1f,%.1f", x(p.Time), y(float64(s.v(p)), top)))
		}
		fmt.Fprintf(&b, `<g class="series" data-series="%s" data-max="%d">`, s.id, s.top)
		fmt.Fprintf(&b, `<polyline id="line-%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="%s"/>`, s.id, s.color, s.dash, strings.Join(line, " "))
		for _, p := range pts {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s" data-time="%s"><title>%s: %s</title></circle>`,
				x(p.Time), y(float64(s.v(p)), top), s.color, p.Time.UTC().Format(time.RFC3339Nano),
				p.Time.UTC().Format("2006-01-02 15:04 UTC"), esc(s.label(p)))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
