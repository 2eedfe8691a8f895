package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/browsertest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/publish"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
)

var releaseTargets = []string{
	"x86_64-unknown-linux-musl",
	"i686-unknown-linux-musl",
	"aarch64-unknown-linux-musl",
	"armv6l-unknown-linux-musleabihf",
}

const (
	testCommit = "0123456789abcdef0123456789abcdef01234567"
	xssVersion = "<img src=x onerror=alert(1)>"
)

// runCLI runs nixbucket with args and returns its exit code, stdout and
// stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"nixbucket"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("nixbucket %q: exit %d: %s", args, code, errs)
	}
	return out
}

// clearCIEnv unsets the CI variables the version defaults from.
func clearCIEnv(t *testing.T) {
	for _, k := range []string{"DRONE_TAG", "DRONE_COMMIT", "CI_COMMIT_TAG", "CI_COMMIT_SHA", "GITHUB_REF_TYPE", "GITHUB_REF_NAME", "GITHUB_SHA", "TARGET", "NIXBUCKET_RELEASE_BUCKET"} {
		t.Setenv(k, "")
	}
}

func s3Env(t *testing.T, srv *s3test.Server) {
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

func TestReleaseClassify(t *testing.T) {
	for v, want := range map[string]string{
		"v0.10.0": "stable", "v1.2.3.4": "stable", "v1x2x3": "extra", "v0.8.0-rc1": "extra",
		"convert_db": "extra", testCommit: "development",
	} {
		if out := mustCLI(t, "release", "classify", v); out != want+"\n" {
			t.Errorf("release classify %s printed %q, want %q", v, out, want)
		}
	}
	if code, _, errs := runCLI(t, "release", "classify"); code != exitUsage || strings.Count(errs, "\n") != 1 {
		t.Errorf("release classify without a version: exit %d, stderr %q", code, errs)
	}
	for _, v := range []string{"", " ", "\t\n"} {
		if code, out, errs := runCLI(t, "release", "classify", v); code != exitUsage || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "empty") {
			t.Errorf("release classify %q: exit %d, stdout %q, stderr %q; want a usage error", v, code, out, errs)
		}
	}
}

// TestPublishReleaseFlow is the seed's release pipeline against a real S3
// server: binaries for four targets under several versions, then the
// index; the JSON is checked, and the page is opened in headless Chromium
// served by serve.New with ServeAll: it renders, every link resolves, and a version
// named like an HTML tag stays text.
func TestPublishReleaseFlow(t *testing.T) {
	clearCIEnv(t)
	srv := s3test.Start(t, s3test.VersityGW)
	s3Env(t, srv)
	dir := t.TempDir()
	bin := filepath.Join(dir, "garage")
	data := make([]byte, 300_000)
	_, _ = rand.Read(data)
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	releases := []struct {
		version string
		day     int
		targets []string
	}{
		{"v0.9.0", 10, releaseTargets},
		{"v0.10.0", 1, releaseTargets},
		{"v1.2.3.4", 2, releaseTargets[:1]},
		{"v1x2x3", 3, releaseTargets[:1]},
		{"v0.8.0-rc1", 5, releaseTargets[:1]},
		{"convert_db", 4, releaseTargets[:2]},
		{testCommit, 6, releaseTargets[:1]},
		{xssVersion, 7, releaseTargets[:1]},
	}
	for _, r := range releases {
		for _, tgt := range r.targets {
			args := []string{"publish", "binary", "--bucket", srv.URL, "--target", tgt}
			if r.version == testCommit {
				t.Setenv("DRONE_COMMIT", testCommit) // the version from the CI environment
			} else {
				args = append(args, "--version", r.version)
			}
			out := mustCLI(t, append(args, bin)...)
			key := "_releases/" + r.version + "/" + tgt + "/garage"
			if !strings.Contains(out, "published "+key) {
				t.Errorf("publish binary printed %q", out)
			}
			// Date the objects (versitygw's posix back end reports file times).
			when := time.Date(2024, 1, r.day, 12, 0, 0, 0, time.UTC)
			for _, k := range []string{key, key + ".sha256"} {
				if err := os.Chtimes(filepath.Join(srv.Dir, srv.Bucket, k), when, when); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Setenv("DRONE_COMMIT", "")
	}
	b := srv.Open(t, srv.Bucket)
	for _, tgt := range releaseTargets {
		key := "_releases/v0.9.0/" + tgt + "/garage"
		if got := readKey(t, b, key); !bytes.Equal(got, data) {
			t.Errorf("%s differs from the published file", key)
		}
		if got := string(readKey(t, b, key+".sha256")); !regexp.MustCompile(`^[0-9a-f]{64}  garage\n$`).MatchString(got) {
			t.Errorf("%s.sha256 = %q", key, got)
		}
	}

	out := mustCLI(t, "publish", "index", "--bucket", srv.URL, "--title", "Garage releases")
	if !strings.Contains(out, "wrote _releases.json and _releases.html") {
		t.Errorf("publish index printed %q", out)
	}
	var ix publish.Index
	if err := json.Unmarshal(readKey(t, b, "_releases.json"), &ix); err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, c := range ix {
		var vs []string
		for _, r := range c.Builds {
			vs = append(vs, r.Version+"="+string(r.Class))
		}
		got = append(got, vs)
	}
	want := [][]string{
		{"v1.2.3.4=stable", "v0.10.0=stable", "v0.9.0=stable"},
		{xssVersion + "=extra", "v0.8.0-rc1=extra", "convert_db=extra", "v1x2x3=extra"},
		{testCommit + "=development"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("index versions\n got %q\nwant %q", got, want)
	}
	for key, ctype := range map[string]string{"_releases.json": "application/json", "_releases.html": "text/html; charset=utf-8"} {
		info, err := b.Stat(context.Background(), key)
		if err != nil || info.ContentType != ctype {
			t.Errorf("%s: Content-Type %q (%v), want %q", key, info.ContentType, err, ctype)
		}
	}

	// The page in a real browser, served from the bucket.
	hs := httptest.NewServer(serve.New(b, serve.Options{ServeAll: true}))
	defer hs.Close()
	pageURL := hs.URL + "/_releases.html"
	dom := browsertest.Chromium(t, "--dump-dom", pageURL)
	for _, s := range []string{"<h1>Garage releases</h1>", "Release builds", "linux/arm64", "linux/386", "Show Development builds", testCommit,
		"&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(dom, s) {
			t.Errorf("rendered page has no %q", s)
		}
	}
	if regexp.MustCompile(`(?i)<img`).MatchString(dom) {
		t.Errorf("rendered page has an <img> element: the version name was not escaped")
	}
	hrefs := regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(dom, -1)
	nbin := 0
	for _, r := range releases {
		nbin += len(r.targets)
	}
	if len(hrefs) != 2*nbin {
		t.Errorf("%d links on the page, want %d (a binary and its checksum per build)", len(hrefs), 2*nbin)
	}
	base, _ := url.Parse(pageURL)
	for _, h := range hrefs {
		ref, err := url.Parse(strings.ReplaceAll(h[1], "&amp;", "&"))
		if err != nil {
			t.Errorf("link %q: %v", h[1], err)
			continue
		}
		u := base.ResolveReference(ref).String()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("link %q → %s: %s", h[1], u, resp.Status)
		}
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	browsertest.Chromium(t, "--screenshot="+shot, "--window-size=1024,768", pageURL)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	colors := map[uint32]bool{}
	for y := 0; y < img.Bounds().Dy(); y += 4 {
		for x := 0; x < img.Bounds().Dx(); x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if img.Bounds().Dx() != 1024 || len(colors) < 3 {
		t.Errorf("screenshot %v with %d colours: the page did not render", img.Bounds(), len(colors))
	}
}

func readKey(t *testing.T, b s3cache.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPublishBadInput checks that publish binary and publish index refuse
// bad input with one line on stderr and the documented exit code, and
// publish nothing.
func TestPublishBadInput(t *testing.T) {
	clearCIEnv(t)
	srv := s3test.Start(t, s3test.VersityGW)
	s3Env(t, srv)
	t.Setenv("NIXBUCKET_RETRY_FOR", "1ns") // no retries: one line on stderr
	dir := t.TempDir()
	bin := filepath.Join(dir, "garage")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	tgt := releaseTargets[0]
	dead := "s3://nope?endpoint=http://127.0.0.1:1&region=garage"
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"missing file", nil, []string{"publish", "binary", "--bucket", srv.URL, "--version", "v1.0.0", "--target", tgt, bin, filepath.Join(dir, "missing")}, exitNotFound, "missing"},
		{"directory", nil, []string{"publish", "binary", "--bucket", srv.URL, "--version", "v1.0.0", "--target", tgt, dir}, exitNotFound, "no such regular file"},
		{"no version", nil, []string{"publish", "binary", "--bucket", srv.URL, "--target", tgt, bin}, exitUsage, "no version"},
		{"no target", map[string]string{"DRONE_TAG": "v1.0.0"}, []string{"publish", "binary", "--bucket", srv.URL, bin}, exitUsage, "no target"},
		{"empty TARGET", map[string]string{"DRONE_TAG": "v1.0.0", "TARGET": ""}, []string{"publish", "binary", "--bucket", srv.URL, bin}, exitUsage, "no target"},
		{"slash in version", nil, []string{"publish", "binary", "--bucket", srv.URL, "--version", "v1/x", "--target", tgt, bin}, exitUsage, "slash"},
		{"no files", nil, []string{"publish", "binary", "--bucket", srv.URL, "--version", "v1.0.0", "--target", tgt}, exitUsage, "no file"},
		{"no bucket", nil, []string{"publish", "binary", "--version", "v1.0.0", "--target", tgt, bin}, exitUsage, "no bucket"},
		{"bad bucket URL", nil, []string{"publish", "binary", "--bucket", "s4://x", "--version", "v1.0.0", "--target", tgt, bin}, exitUsage, "s4"},
		{"unreachable bucket", nil, []string{"publish", "binary", "--bucket", dead, "--version", "v1.0.0", "--target", tgt, bin}, exitRemote, "cannot reach"},
		{"missing bucket", nil, []string{"publish", "binary", "--bucket", srv.StoreURL("no-such-bucket-x"), "--version", "v1.0.0", "--target", tgt, bin}, exitRemote, "does not exist"},
		{"access denied", map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong"}, []string{"publish", "binary", "--bucket", srv.URL, "--version", "v1.0.0", "--target", tgt, bin}, exitRemote, "access denied"},
		{"index unreachable", nil, []string{"publish", "index", "--bucket", dead}, exitRemote, "cannot reach"},
		{"index bad prefix", nil, []string{"publish", "index", "--bucket", srv.URL, "--prefix", "/"}, exitUsage, "prefix"},
		{"prefix nar/", nil, []string{"publish", "binary", "--bucket", srv.URL, "--prefix", "nar/", "--version", "v1.0.0", "--target", tgt, bin}, exitUsage, "cache layout"},
		{"prefix locks/x/", nil, []string{"publish", "binary", "--bucket", srv.URL, "--prefix", "locks/x/", "--version", "v1.0.0", "--target", tgt, bin}, exitUsage, "cache layout"},
		{"prefix a narinfo", nil, []string{"publish", "binary", "--bucket", srv.URL, "--prefix", "0123456789abcdfghijklmnpqrsvwxyz.narinfo", "--version", "v1.0.0", "--target", tgt, bin}, exitUsage, "cache layout"},
		{"index prefix roots/", nil, []string{"publish", "index", "--bucket", srv.URL, "--prefix", "roots/"}, exitUsage, "cache layout"},
		{"index prefix nix-cache-info", nil, []string{"publish", "index", "--bucket", srv.URL, "--prefix", "nix-cache-info"}, exitUsage, "cache layout"},
		{"index bad base URL", nil, []string{"publish", "index", "--bucket", srv.URL, "--base-url", "javascript:alert(1)"}, exitUsage, "base-url"},
		{"index bad source URL", nil, []string{"publish", "index", "--bucket", srv.URL, "--source-url", "javascript:alert({version})"}, exitUsage, "--source-url"},
		{"index source URL without version", nil, []string{"publish", "index", "--bucket", srv.URL, "--source-url", "https://git.example.org/me/app"}, exitUsage, "no {version}"},
		{"blank version", nil, []string{"publish", "binary", "--bucket", srv.URL, "--version", "  ", "--target", tgt, bin}, exitUsage, "white space"},
		{"version with a trailing newline", nil, []string{"publish", "binary", "--bucket", srv.URL, "--version", "v1.0.0\n", "--target", tgt, bin}, exitUsage, "white space"},
		{"blank CI variables", map[string]string{"DRONE_TAG": " ", "DRONE_COMMIT": "\t", "CI_COMMIT_TAG": " "}, []string{"publish", "binary", "--bucket", srv.URL, "--target", tgt, bin}, exitUsage, "no version"},
		{"blank target", nil, []string{"publish", "binary", "--bucket", srv.URL, "--version", "v1.0.0", "--target", " ", bin}, exitUsage, "white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, _, errs := runCLI(t, tc.args...)
			if code != tc.code || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and one line with %q", code, errs, tc.code, tc.want)
			}
			if strings.Contains(errs, srv.SecretKey) {
				t.Errorf("the secret key is on stderr")
			}
		})
	}
	var keys []string
	err := srv.Open(t, srv.Bucket).List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("refused commands left objects in the bucket: %q", keys)
	}
}
