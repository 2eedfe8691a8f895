package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
)

// logsExpr is two derivations built fresh (nonce) whose builders print
// marker lines: top refers to dep.
const logsExpr = `{ nonce }:
let
  mk = name: script: derivation { inherit name nonce; system = builtins.currentSystem; builder = "/bin/sh";
    PATH = "/usr/bin:/bin"; args = [ "-c" script ]; };
  dep = mk "logs-dep" "echo nixbucket-log-dep-${nonce}; echo a second line >&2; echo dep > $out";
in mk "logs-top" "echo nixbucket-log-top-${nonce}; echo ${dep} > $out"
`

// TestPushLogs builds two derivations whose builders print markers with
// the machine's Nix, pushes them without --logs (nix log finds nothing),
// then with --logs (the paths are present: their logs go up anyway), and
// has real Nix's `nix log --store` read the logs back through `nixbucket
// serve`, from MinIO with plain logs and with log-compression=zstd and br
// (served decoded), and from a file:// cache directly. Nix 2.8 (Debian's)
// has no s3:// store, so `nix log --store s3://…` is not tried.
func TestPushLogs(t *testing.T) {
	t.Parallel()
	nonce := make([]byte, 8)
	rand.Read(nonce)
	n := hex.EncodeToString(nonce)
	f := nixtest.WriteExpr(t, "import ("+nixtest.WriteExpr(t, logsExpr)+") { nonce = \""+n+"\"; }")
	top := nixtest.Build(t, f)[0]
	dep := strings.TrimSpace(nixtest.Run(t, "nix-store", "-q", "--references", top))
	key, _ := signing.GenerateSecretKey("cli-logs-1")
	srv := s3test.Start(t, s3test.MinIO)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	ctx := context.Background()

	for _, tc := range []struct {
		name, url, encoding string
	}{
		{"plain", srv.StoreURL(srv.NewBucket(t)), ""},
		{"zstd", srv.StoreURL(srv.NewBucket(t)) + "&log-compression=zstd", "zstd"},
		{"br", srv.StoreURL(srv.NewBucket(t)) + "&log-compression=br", "br"},
		{"file", "file://" + filepath.Join(t.TempDir(), "cache") + "?log-compression=zstd", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, stderr := runBin(t, env, "push", "--cache", tc.url, top); code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			u, err := s3cache.ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			var b s3cache.Bucket
			nixURL := ""
			if u.Scheme == s3cache.SchemeS3 {
				b = srv.Open(t, u.Bucket)
				nixURL = startServe(t, env, "--cache", tc.url).base
			} else {
				if b, err = s3cache.NewFileBucket(u.Dir); err != nil {
					t.Fatal(err)
				}
				nixURL = "file://" + u.Dir
			}
			if out, err := nixLog(t, nixURL, top); err == nil {
				t.Fatalf("nix log found a log the cache does not have: %q", out)
			}

			code, stdout, stderr := runBin(t, env, "push", "--cache", tc.url, "--logs", "--json", top)
			var res struct {
				Pushed      int `json:"pushed"`
				Logs        int `json:"logs"`
				LogBytes    int `json:"logBytes"`
				LogsPresent int `json:"logsPresent"`
			}
			if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil {
				t.Fatalf("push --logs: exit %d, %v: %s%s", code, err, stdout, stderr)
			}
			if res.Pushed != 0 || res.Logs != 2 || res.LogBytes == 0 || res.LogsPresent != 0 {
				t.Errorf("push --logs of a present closure: %+v; want 0 pushed, 2 logs", res)
			}
			for _, p := range []string{top, dep} {
				drv := nixtest.PathInfos(t, p)[p].Deriver
				info, err := b.Stat(ctx, layout.LogKey(drv))
				if err != nil {
					t.Fatalf("the log of %s: %v", drv, err)
				}
				if u.Scheme == s3cache.SchemeS3 && info.ContentEncoding != tc.encoding {
					t.Errorf("%s: Content-Encoding %q, want %q", info.Key, info.ContentEncoding, tc.encoding)
				}
			}
			for p, marker := range map[string]string{top: "nixbucket-log-top-" + n, dep: "nixbucket-log-dep-" + n} {
				out, err := nixLog(t, nixURL, p)
				if err != nil || !strings.Contains(out, marker) {
					t.Errorf("nix log --store %s %s: %v, %q; want it to show %s", nixURL, p, err, out, marker)
				}
			}
			// Again: the logs are there, nothing is uploaded (no "logs"),
			// and the summary line says they were there.
			code, stdout, stderr = runBin(t, env, "push", "--cache", tc.url, "--logs", "--json", top)
			res.Logs = 0
			if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || res.Logs != 0 || res.LogsPresent != 2 {
				t.Errorf("push --logs again: exit %d, %v, %d logs, %d present; want 0 and 2: %s%s", code, err, res.Logs, res.LogsPresent, stdout, stderr)
			}
			code, stdout, stderr = runBin(t, env, "push", "--cache", tc.url, "--logs", top)
			if want := "uploaded 0 build logs (0 B); 2 already in the cache\n"; code != 0 || !strings.Contains(stdout, want) {
				t.Errorf("push --logs again: exit %d, want %q in:\n%s%s", code, want, stdout, stderr)
			}
			if tc.name != "plain" {
				return
			}
			// rm takes the paths out: gc with no grace condemns their
			// logs, then deletes them, and its summary counts them.
			if code, _, stderr := runBin(t, env, "rm", "--cache", tc.url, "--with-referrers", dep); code != 0 {
				t.Fatalf("rm: exit %d: %s", code, stderr)
			}
			for i, want := range []string{"; 2 condemned;", "of which 2 build logs, 0 listings, 0 realisations"} {
				code, stdout, stderr := runBin(t, env, "gc", "--cache", tc.url, "--grace", "0")
				if code != 0 || !strings.Contains(stdout, want) {
					t.Errorf("gc run %d: exit %d, want %q in its summary:\n%s%s", i+1, code, want, stdout, stderr)
				}
			}
			for _, p := range []string{top, dep} {
				if _, err := b.Stat(ctx, layout.LogKey(nixtest.PathInfos(t, p)[p].Deriver)); !errors.Is(err, s3cache.ErrNotFound) {
					t.Errorf("the log of %s after gc: %v, want it deleted", p, err)
				}
			}
		})
	}

	for _, tc := range []struct{ name, url, says string }{
		{"http", "http://127.0.0.1:1/cache", "--logs needs an s3:// or file:// cache"},
		{"xz", srv.URL + "&log-compression=xz", "log-compression=xz"},
		{"lz4", srv.URL + "&log-compression=lz4", "log-compression=lz4"},
	} {
		code, stdout, stderr := runBin(t, env, "push", "--cache", tc.url, "--logs", top)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.says) {
			t.Errorf("push --logs %s: exit %d, stdout %q, stderr %q; want exit %d saying %q", tc.name, code, stdout, stderr, exitUsage, tc.says)
		}
		oneErrorLine(t, stderr)
	}
}

// nixLog runs real Nix's `nix log --store URL PATH` with a cache directory
// of its own, and returns its output.
func nixLog(t *testing.T, url, path string) (string, error) {
	t.Helper()
	args := append([]string{"log", "--store", url, path, "--option", "narinfo-cache-negative-ttl", "0"}, nixtest.Options...)
	out, err := nixtest.Output(context.Background(), []string{"XDG_CACHE_HOME=" + t.TempDir(), "PAGER=cat", "NIX_PAGER=cat"}, "nix", args...)
	return string(out), err
}
