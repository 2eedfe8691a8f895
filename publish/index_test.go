package publish_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/publish"
	"github.com/nixbucket/nixbucket/s3cache"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

// xss is a version name that would run a script if it were not escaped.
const xss = "<img src=x onerror=alert(1)>"

// fileRelease publishes one file per target for version into a file://
// bucket and dates its objects day d of 2024.
func fileRelease(t *testing.T, b s3cache.Bucket, root, version string, d int, tgts ...string) {
	t.Helper()
	src, _ := writeFile(t, t.TempDir(), "garage", 64)
	for _, tgt := range tgts {
		if _, err := publish.PublishBinaries(context.Background(), b, "_releases/", version, tgt, []publish.Binary{{Path: src}}); err != nil {
			t.Fatal(err)
		}
		when := time.Date(2024, 1, d, 12, 0, 0, 0, time.UTC)
		for _, k := range []string{"garage", "garage.sha256"} {
			p := filepath.Join(root, "_releases", version, tgt, k)
			if err := os.Chtimes(p, when, when); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestBuildIndex(t *testing.T) {
	root := t.TempDir()
	b, err := s3cache.NewFileBucket(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fileRelease(t, b, root, "v0.9.0", 10, targets...)
	fileRelease(t, b, root, "v0.10.0", 1, targets...)
	fileRelease(t, b, root, "v1.2.3.4", 2, targets[0])
	fileRelease(t, b, root, "v1x2x3", 3, targets[0])
	fileRelease(t, b, root, "v0.8.0-rc1", 5, targets[0])
	fileRelease(t, b, root, "convert_db", 4, targets[0], targets[2])
	fileRelease(t, b, root, commit, 6, targets[0])
	fileRelease(t, b, root, xss, 7, targets[0])
	// Objects outside the layout are skipped, not fatal.
	if err := b.Put(ctx, "_releases/stray", strings.NewReader("x"), 1, s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	ix, err := publish.PublishIndex(ctx, b, publish.IndexOptions{}, "Garage releases")
	if err != nil {
		t.Fatal(err)
	}
	var names [][]string
	for _, c := range ix {
		var vs []string
		for _, r := range c.Builds {
			vs = append(vs, r.Version)
		}
		names = append(names, vs)
	}
	want := [][]string{
		{"v1.2.3.4", "v0.10.0", "v0.9.0"},
		{xss, "v0.8.0-rc1", "convert_db", "v1x2x3"},
		{commit},
	}
	if len(names) != 3 || ix[0].Name != "Release" || ix[1].Name != "Extra" || ix[2].Name != "Development" {
		t.Fatalf("categories %+v", ix)
	}
	for i := range want {
		if !slices.Equal(names[i], want[i]) {
			t.Errorf("%s versions %q, want %q", ix[i].Name, names[i], want[i])
		}
	}
	if ix[0].Hide || !ix[1].Hide || !ix[2].Hide {
		t.Errorf("hide flags %v %v %v, want false true true", ix[0].Hide, ix[1].Hide, ix[2].Hide)
	}
	v09 := ix[0].Builds[2]
	if len(v09.Builds) != 4 {
		t.Fatalf("v0.9.0 has %d builds, want 4 (checksums are not builds)", len(v09.Builds))
	}
	var pretty []string
	for _, bd := range v09.Builds {
		pretty = append(pretty, bd.PlatformName)
		if bd.URL != "./"+bd.Path || bd.ChecksumURL != bd.URL+".sha256" || len(bd.SHA256) != 64 || bd.Size != "64" {
			t.Errorf("build %+v", bd)
		}
	}
	if want := []string{"linux/arm64", "linux/arm", "linux/386", "linux/amd64"}; !slices.Equal(pretty, want) {
		t.Errorf("platform names %q, want %q", pretty, want)
	}
	if v09.Date.Day() != 10 || v09.Builds[0].Date != "2024-01-10" || v09.Builds[0].Time != "12:00:00" {
		t.Errorf("v0.9.0 dated %v / %s %s", v09.Date, v09.Builds[0].Date, v09.Builds[0].Time)
	}

	// The JSON written to the bucket is the index.
	var fromBucket publish.Index
	if err := json.Unmarshal(get(t, b, "_releases.json"), &fromBucket); err != nil {
		t.Fatal(err)
	}
	if len(fromBucket) != 3 || len(fromBucket[1].Builds) != 4 || fromBucket[1].Builds[0].Version != xss || fromBucket[2].Builds[0].Class != publish.Development {
		t.Errorf("_releases.json does not hold the index: %+v", fromBucket)
	}

	html := string(get(t, b, "_releases.html"))
	if strings.Contains(html, "<img") {
		t.Errorf("the page holds an unescaped <img")
	}
	for _, s := range []string{"&lt;img src=x onerror=alert(1)&gt;", "<details>", "Show Extra builds", "linux/arm64", "<title>Garage releases</title>",
		`href="./_releases/v0.9.0/aarch64-unknown-linux-musl/garage"`, `href="./_releases/v0.9.0/aarch64-unknown-linux-musl/garage.sha256"`,
		`href="./_releases/%3Cimg%20src=x%20onerror=alert%281%29%3E/x86_64-unknown-linux-musl/garage"`} {
		if !strings.Contains(html, s) {
			t.Errorf("the page has no %s", s)
		}
	}

	t.Run("base URL", func(t *testing.T) {
		ix, err := publish.BuildIndex(ctx, b, publish.IndexOptions{BaseURL: "https://example.org/"})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := ix.WriteHTML(&buf, "x"); err != nil {
			t.Fatal(err)
		}
		if u := ix[0].Builds[0].Builds[0].URL; u != "https://example.org/_releases/v1.2.3.4/x86_64-unknown-linux-musl/garage" {
			t.Errorf("URL %q", u)
		}
		html := buf.String()
		for _, s := range []string{
			`href="https://example.org/_releases/v1.2.3.4/x86_64-unknown-linux-musl/garage"`,
			`href="https://example.org/_releases/v1.2.3.4/x86_64-unknown-linux-musl/garage.sha256"`,
			`href="https://example.org/_releases/%3Cimg%20src=x%20onerror=alert%281%29%3E/x86_64-unknown-linux-musl/garage"`,
		} {
			if !strings.Contains(html, s) {
				t.Errorf("the page has no %s", s)
			}
		}
		// Every link of the page is absolute, under the base URL.
		for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(html, -1) {
			if !strings.HasPrefix(m[1], "https://example.org/_releases/") {
				t.Errorf("link %q is not under the base URL", m[1])
			}
		}
		if strings.Contains(html, "Sources:") {
			t.Errorf("the page has source links that were not asked for")
		}
	})

	t.Run("source links", func(t *testing.T) {
		var srcs []publish.SourceTemplate
		for _, s := range []string{
			"https://git.deuxfleurs.fr/Deuxfleurs/garage/src/{type}/{version}",
			"https://git.deuxfleurs.fr/Deuxfleurs/garage/archive/{version}.zip",
			"https://git.deuxfleurs.fr/Deuxfleurs/garage/archive/{version}.tar.gz",
		} {
			st, err := publish.ParseSourceTemplate(s)
			if err != nil {
				t.Fatal(err)
			}
			srcs = append(srcs, st)
		}
		ix, err := publish.BuildIndex(ctx, b, publish.IndexOptions{Sources: srcs})
		if err != nil {
			t.Fatal(err)
		}
		want := []publish.SourceLink{
			{Label: "source", URL: "https://git.deuxfleurs.fr/Deuxfleurs/garage/src/tag/v0.9.0"},
			{Label: ".zip", URL: "https://git.deuxfleurs.fr/Deuxfleurs/garage/archive/v0.9.0.zip"},
			{Label: ".tar.gz", URL: "https://git.deuxfleurs.fr/Deuxfleurs/garage/archive/v0.9.0.tar.gz"},
		}
		if got := ix[0].Builds[2].Sources; !slices.Equal(got, want) {
			t.Errorf("v0.9.0 sources\n got %+v\nwant %+v", got, want)
		}
		if got := ix[2].Builds[0].Sources[0].URL; got != "https://git.deuxfleurs.fr/Deuxfleurs/garage/src/commit/"+commit {
			t.Errorf("commit source link %q", got)
		}
		var buf bytes.Buffer
		if err := ix.WriteHTML(&buf, "x"); err != nil {
			t.Fatal(err)
		}
		html := buf.String()
		for _, s := range []string{
			`<p class="sources">Sources: <a href="https://git.deuxfleurs.fr/Deuxfleurs/garage/src/tag/v0.9.0">source</a> · <a href="https://git.deuxfleurs.fr/Deuxfleurs/garage/archive/v0.9.0.zip">.zip</a> · <a href="https://git.deuxfleurs.fr/Deuxfleurs/garage/archive/v0.9.0.tar.gz">.tar.gz</a></p>`,
			`href="https://git.deuxfleurs.fr/Deuxfleurs/garage/src/commit/` + commit + `"`,
			`href="https://git.deuxfleurs.fr/Deuxfleurs/garage/src/tag/%3Cimg%20src=x%20onerror=alert%281%29%3E"`,
		} {
			if !strings.Contains(html, s) {
				t.Errorf("the page has no %s", s)
			}
		}
		if n := strings.Count(html, `<p class="sources">`); n != 8 {
			t.Errorf("%d source paragraphs, want one per version (8)", n)
		}
		if strings.Contains(html, "<img") {
			t.Errorf("the page holds an unescaped <img")
		}
		var js bytes.Buffer
		if err := ix.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(js.String(), `"url": "https://git.deuxfleurs.fr/Deuxfleurs/garage/archive/v0.9.0.zip"`) {
			t.Errorf("the JSON has no source links")
		}
	})

	t.Run("page before JSON", func(t *testing.T) {
		rec := &recorder{Bucket: b}
		if _, err := publish.PublishIndex(ctx, rec, publish.IndexOptions{}, ""); err != nil {
			t.Fatal(err)
		}
		if want := []string{"_releases.html", "_releases.json"}; !slices.Equal(rec.puts, want) {
			t.Errorf("writes %q, want %q", rec.puts, want)
		}
		// If the page cannot be written, the JSON is left as it was.
		before := get(t, b, "_releases.json")
		fileRelease(t, b, root, "v3.0.0", 20, targets[0])
		rec.fail = func(k string) bool { return k == "_releases.html" }
		if _, err := publish.PublishIndex(ctx, rec, publish.IndexOptions{}, ""); err == nil || !strings.Contains(err.Error(), "_releases.html") {
			t.Errorf("error %v, want one naming _releases.html", err)
		}
		if after := get(t, b, "_releases.json"); !bytes.Equal(after, before) {
			t.Errorf("the JSON changed although the page could not be written")
		}
	})

	t.Run("empty", func(t *testing.T) {
		b, err := s3cache.NewFileBucket(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ix, err := publish.PublishIndex(ctx, b, publish.IndexOptions{Prefix: "rel/"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ix) != 3 || len(ix[0].Builds) != 0 {
			t.Errorf("index of an empty bucket: %+v", ix)
		}
		if html := string(get(t, b, "rel.html")); strings.Count(html, "There is no build for this category") != 3 {
			t.Errorf("empty categories not announced")
		}
	})
}

func TestIndexKeys(t *testing.T) {
	for _, tc := range []struct{ prefix, json, html string }{
		{"_releases/", "_releases.json", "_releases.html"},
		{"_releases", "_releases.json", "_releases.html"},
		{"a/b/", "a/b.json", "a/b.html"},
	} {
		j, h, err := publish.IndexKeys(tc.prefix)
		if err != nil || j != tc.json || h != tc.html {
			t.Errorf("IndexKeys(%q) = %q, %q, %v", tc.prefix, j, h, err)
		}
	}
	for _, bad := range []string{"", "/", "/x/", "a//b/", "../x/"} {
		if _, _, err := publish.IndexKeys(bad); err == nil {
			t.Errorf("IndexKeys(%q) accepted", bad)
		}
	}
}

func TestParseSourceTemplate(t *testing.T) {
	for _, tc := range []struct {
		in, label, url string // url is the link of v1.0.0, a tag; "" for an error
		err            string
	}{
		{"https://git.example.org/me/app/src/{type}/{version}", "source", "https://git.example.org/me/app/src/tag/v1.0.0", ""},
		{"https://git.example.org/me/app/archive/{version}.zip", ".zip", "https://git.example.org/me/app/archive/v1.0.0.zip", ""},
		{"https://git.example.org/me/app/archive/{version}.tar.gz", ".tar.gz", "https://git.example.org/me/app/archive/v1.0.0.tar.gz", ""},
		{"browse=https://github.com/me/app/tree/{version}", "browse", "https://github.com/me/app/tree/v1.0.0", ""},
		{"https://example.org/dl?v={version}&f=zip", "source", "https://example.org/dl?v=v1.0.0&f=zip", ""},
		{"http://example.org/{version}/{version}", "source", "http://example.org/v1.0.0/v1.0.0", ""},
		{"https://example.org/archive", "", "", "no {version}"},
		{"javascript:alert({version})", "", "", "http"},
		{"git.example.org/{version}", "", "", "http"},
		{"x=javascript:alert({version})", "", "", "http"},
		{"=https://example.org/{version}", "", "", "empty label"},
		{"https://example.org/{ref}/{version}", "", "", "unknown placeholder {ref}"},
		{"https:///{version}", "", "", "host"},
		{"", "", "", "http"},
	} {
		st, err := publish.ParseSourceTemplate(tc.in)
		if tc.err != "" {
			if !errors.Is(err, publish.ErrBadSourceURL) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSourceTemplate(%q) = %+v, %v; want an error with %q", tc.in, st, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSourceTemplate(%q): %v", tc.in, err)
			continue
		}
		if l := st.Link("v1.0.0", "tag"); l.Label != tc.label || l.URL != tc.url {
			t.Errorf("ParseSourceTemplate(%q) links v1.0.0 as %+v, want %s %s", tc.in, l, tc.label, tc.url)
		}
	}
}

func FuzzParseSourceTemplate(f *testing.F) {
	for _, s := range []string{"https://x.org/{version}", "zip=https://x.org/a/{version}.zip", "https://x.org/{type}/{version}", "javascript:{version}", "a=b=c", "https://{version}"} {
		f.Add(s, "v1.0.0")
	}
	f.Fuzz(func(t *testing.T, s, version string) {
		st, err := publish.ParseSourceTemplate(s)
		if err != nil {
			if !errors.Is(err, publish.ErrBadSourceURL) {
				t.Fatalf("error %v does not wrap ErrBadSourceURL", err)
			}
			return
		}
		l := st.Link(version, "commit")
		if l.Label == "" || (!strings.HasPrefix(l.URL, "https://") && !strings.HasPrefix(l.URL, "http://")) {
			t.Fatalf("ParseSourceTemplate(%q) links %q as %+v", s, version, l)
		}
		if strings.ContainsAny(l.URL, "<>\" \x00") && !strings.ContainsAny(st.URL, "<>\" \x00") {
			t.Fatalf("version %q put unescaped characters in %q", version, l.URL)
		}
	})
}
