package stats_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/gc/roots"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

// synthetic is a generated cache and the figures the test expects.
type synthetic struct {
	objects      map[string]int // key → size
	want         stats.Report
	manifests    int
	manifestData map[string][]byte
}

func mustJSON(m *roots.Manifest) []byte {
	data, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return data
}

func hash32() string {
	b := make([]byte, 20)
	rand.Read(b)
	return nixbase32.EncodeToString(b)[:32]
}

// generate makes a cache of about n objects: paths (narinfo + NAR, some
// with .ls), some covered by three root manifests, orphan NARs, logs and
// other files.
func generate(n int) *synthetic {
	s := &synthetic{objects: map[string]int{}}
	s.want.ByKind = map[string]stats.Count{}
	add := func(key string, size int) {
		s.objects[key] = size
		c := s.want.ByKind[stats.KindOf(key)]
		c.Objects++
		c.Bytes += int64(size)
		s.want.ByKind[stats.KindOf(key)] = c
		s.want.Total.Objects++
		s.want.Total.Bytes += int64(size)
	}
	paths := n * 4 / 10
	var entries []roots.Entry
	for i := range paths {
		h, nh := hash32(), hash32()+hash32()[:20]
		narKey := "nar/" + nh + ".nar.zst"
		add(h+".narinfo", 300+i%50)
		add(narKey, 1000+i)
		if i%7 == 0 {
			add(h+".ls", 90)
		}
		s.want.Paths++
		if i%2 == 0 { // half the paths belong to a root
			e := roots.Entry{Path: "/nix/store/" + h + "-p" + strconv.Itoa(i), NarInfo: h + ".narinfo", NarHash: "sha256:" + nh, NarSize: uint64(3000 + i)}
			if i%4 == 0 {
				e.NAR = narKey // recorded by the push that uploaded it
			}
			entries = append(entries, e)
			s.want.KnownPaths++
			s.want.KnownNarSize += e.NarSize
			s.want.KnownStored += int64(1000 + i)
		} else {
			// Unaccounted NAR, reclaimable narinfo (+ listing), once old.
			s.want.Unaccounted.Objects++
			s.want.Unaccounted.Bytes += int64(1000 + i)
			s.want.Reclaimable.Objects += 2
			s.want.Reclaimable.Bytes += int64(1000+i) + int64(300+i%50)
			if i%7 == 0 {
				s.want.Reclaimable.Objects++
				s.want.Reclaimable.Bytes += 90
			}
		}
	}
	// Orphan NARs (killed pushes).
	for i := range n / 20 {
		add("nar/"+hash32()+hash32()[:20]+".nar.xz", 5000+i)
		s.want.Unaccounted.Objects++
		s.want.Unaccounted.Bytes += int64(5000 + i)
		s.want.Reclaimable.Objects++
		s.want.Reclaimable.Bytes += int64(5000 + i)
	}
	for i := range n / 50 {
		add(fmt.Sprintf("log/%s-drv%d.drv", hash32(), i), 700)
	}
	for i := range n / 50 {
		add(fmt.Sprintf("_releases/v%d/bin", i), 4096)
	}
	add("nix-cache-info", 48)
	// Three roots splitting the entries; root "a" twice.
	chunks := [][]roots.Entry{entries[:len(entries)/3], entries[len(entries)/3 : 2*len(entries)/3], entries[2*len(entries)/3:]}
	s.manifestData = map[string][]byte{}
	for i, name := range []string{"a", "b", "c"} {
		m := &roots.Manifest{Version: 1, Name: name, Created: time.Date(2026, 11, 1+i, 0, 0, 0, 0, time.UTC), StoreDir: "/nix/store", Paths: chunks[i]}
		data := mustJSON(m)
		key := roots.Key(name, m.Created)
		s.manifestData[key] = data
		add(key, len(data))
		s.manifests++
	}
	old := &roots.Manifest{Version: 1, Name: "a", Created: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), StoreDir: "/nix/store", Paths: chunks[0][:1]}
	key := roots.Key("a", old.Created)
	s.manifestData[key] = mustJSON(old)
	add(key, len(s.manifestData[key]))
	s.manifests++
	return s
}

// TestCollectSynthetic fills a real S3 bucket with a synthetic cache and
// checks that stats needs no per-object GET (requests counted at a proxy)
// and that its figures match the test's own recount.
func TestCollectSynthetic(t *testing.T) {
	n := 5000
	if v := os.Getenv("NIXBUCKET_STATS_OBJECTS"); v != "" {
		n, _ = strconv.Atoi(v) // make bench uses 50000
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
	s := generate(n)
	fill(t, b, s)
	before := proxy.Requests()
	later := time.Now().Add(72 * time.Hour) // everything older than the grace
	r, err := stats.Collect(context.Background(), b, stats.Options{Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	requests := proxy.Requests() - before
	wantRequests := (len(s.objects)+999)/1000 + 1 + s.manifests
	if requests != wantRequests || r.Gets != s.manifests {
		t.Errorf("stats made %d requests (%d GETs); want %d: LIST pages, one upload listing, a GET per manifest (%d)", requests, r.Gets, wantRequests, s.manifests)
	}
	w := s.want
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
	t.Logf("%d objects: %d requests", len(s.objects), requests)

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
	dom := chromium(t, "--dump-dom", "file://"+page)
	for _, want := range []string{`id="line-bytes"`, `id="line-narinfos"`, "<circle", fmt.Sprintf(`id="total-objects">%d<`, r.Total.Objects)} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %s", want)
		}
	}
	shot := filepath.Join(dir, "stats.png")
	chromium(t, "--screenshot="+shot, "--window-size=900,900", "file://"+page)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 5000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if out := os.Getenv("NIXBUCKET_STATS_SCREENSHOT"); out != "" {
		data, _ := os.ReadFile(shot)
		os.WriteFile(out, data, 0o644)
	}
}

func fill(t *testing.T, b s3cache.Bucket, s *synthetic) {
	t.Helper()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(32)
	for key, size := range s.objects {
		g.Go(func() error {
			data := s.manifestData[key]
			if data == nil {
				data = bytes.Repeat([]byte{'x'}, size)
			}
			return b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// chromium runs headless Chromium with a fresh profile and returns stdout.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (Debian package chromium; scripts/setup.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %q: %v: %s", args, err, errb.String())
	}
	return out.String()
}
