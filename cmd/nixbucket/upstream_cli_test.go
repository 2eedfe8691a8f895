package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dustin/go-humanize"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

// upstreamExpr is a closure of two layers: upA and upB (which refers to
// upA) play the paths an upstream cache serves; own and app (which refer
// to them and to each other) are the project's own. %s is a salt, so
// that each run builds fresh paths whose only signatures are its own.
const upstreamExpr = `let
  mk = name: script: derivation { inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    PATH = "/usr/bin:/bin"; args = [ "-c" script ]; };
  upA = mk "up-a-%[1]s" "mkdir $out; head -c 1048576 /dev/urandom > $out/data";
  upB = mk "up-b-%[1]s" "mkdir $out; echo ${upA} > $out/ref; head -c 524288 /dev/urandom > $out/data";
  own = mk "own-%[1]s" "mkdir $out; echo ${upB} > $out/ref; head -c 65536 /dev/urandom > $out/data";
  app = mk "app-%[1]s" "mkdir $out; echo ${own} ${upA} > $out/ref";
in { inherit upA upB own app; }`

// genKey makes a Nix signing key pair named name in dir and returns the
// secret key's file and the public key.
func genKey(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	sec, pub := filepath.Join(dir, name+".sec"), filepath.Join(dir, name+".pub")
	nixtest.Run(t, "nix-store", "--generate-binary-cache-key", name, sec, pub)
	text, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sec, strings.TrimSpace(string(text))
}

// upstreamFixture is the closure of the upstream tests, built with a
// fresh salt: upA and upB signed locally by key U (as if substituted from
// the upstream) and served by a file:// cache signed by U (upDir), own
// and app signed by no one yet.
type upstreamFixture struct {
	upA, upB, own, app string
	dir                string
	upPub              string
	ownSec, ownPub     string
	upDir              string
}

func newUpstreamFixture(t *testing.T) *upstreamFixture {
	t.Helper()
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	f := nixtest.WriteExpr(t, fmt.Sprintf(upstreamExpr, hex.EncodeToString(salt)))
	built := nixtest.Build(t, f, "upA", "upB", "own", "app")
	fx := &upstreamFixture{upA: built[0], upB: built[1], own: built[2], app: built[3], dir: t.TempDir()}
	upSec, upPub := genKey(t, fx.dir, "upstream-test-1")
	fx.upPub = upPub
	fx.ownSec, fx.ownPub = genKey(t, fx.dir, "own-test-1")
	nixtest.Run(t, "nix", "store", "sign", "--key-file", upSec, fx.upA, fx.upB)
	fx.upDir = filepath.Join(fx.dir, "upstream-cache")
	nixtest.Run(t, "nix", append([]string{"copy", "--to", "file://" + fx.upDir + "?secret-key=" + upSec, fx.upB}, nixtest.Options...)...)
	return fx
}

// TestSkipUpstream leaves upstream the paths signed locally by an
// upstream key: a file:// cache signed by key U plays the upstream, and
// the local paths carry U's signature (nix store sign). push
// --skip-signed-by U uploads only the own paths into MinIO and records
// the others (an upstream record, and the root manifest with --root);
// real Nix with both caches as substituters then substitutes the whole
// closure into an empty store, building nothing. verify reports the
// references left to upstream (and fails with --require-complete), stats
// counts them, gc with a root keeps everything.
func TestSkipUpstream(t *testing.T) {
	t.Parallel()
	fx := newUpstreamFixture(t)
	upA, upB, own, app := fx.upA, fx.upB, fx.own, fx.app
	upPub, ownSec, ownPub, upDir := fx.upPub, fx.ownSec, fx.ownPub, fx.upDir
	infos := nixtest.PathInfos(t, upA, upB, own, app)
	upBytes := infos[upA].NarSize + infos[upB].NarSize
	ownBytes := infos[own].NarSize + infos[app].NarSize

	srv := s3test.Start(t, s3test.MinIO)
	for _, tc := range []struct {
		name  string
		args  []string
		paths []string // the paths given to push
		n     int      // how many push counts
	}{
		{"record", nil, []string{app}, 4},
		{"root", []string{"--root", "main"}, []string{app}, 4},
		// Without the closure, the references outside the request
		// that the cache lacks are left upstream from the local store's
		// signatures.
		{"no-recursive", []string{"--no-recursive"}, []string{own, app}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := srv.NewBucket(t)
			url := srv.StoreURL(bucket)
			push := append([]string{"push", "--cache", url, "--secret-key-file", ownSec, "--skip-signed-by", "upstream-test-1"}, tc.args...)

			if tc.name == "no-recursive" {
				code, _, stderr := runBin(t, creds(srv), append([]string{"push", "--cache", url, "--no-recursive", "--dry-run"}, tc.paths...)...)
				if code == 0 || !strings.Contains(stderr, "neither pushed nor in the cache") {
					t.Fatalf("push --no-recursive without --skip-signed-by: exit %d, %q; want the missing references refused", code, stderr)
				}
			}
			code, stdout, stderr := runBin(t, creds(srv), append(append(push, "--dry-run"), tc.paths...)...)
			if want := fmt.Sprintf("would leave 2 paths (%s of NAR) upstream\n", humanize.IBytes(upBytes)); code != 0 || !strings.HasSuffix(stdout, want) {
				t.Fatalf("push --dry-run: exit %d, %q (%s); want it to end %q", code, stdout, stderr, want)
			}
			code, stdout, stderr = runBin(t, creds(srv), append(append(push, "--json"), tc.paths...)...)
			if code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			p := decodePush(t, stdout)
			if p.num(t, "paths") != float64(tc.n) || p.num(t, "pushed") != 2 || p.num(t, "skipped") != 0 || p.num(t, "upstream") != 2 ||
				p.num(t, "upstreamNarBytes") != float64(upBytes) || p.num(t, "narBytes") != float64(ownBytes) {
				t.Fatalf("push --json = %s; want 2 paths pushed (%d NAR bytes) and 2 (%d) left upstream", stdout, ownBytes, upBytes)
			}
			t.Logf("NAR bytes left upstream: %d, pushed: %d", upBytes, ownBytes)

			b := srv.Open(t, bucket)
			infosIn, nars, other := bucketKeys(t, b)
			if !maps(infosIn, hashSet([]string{own, app})) || len(nars) != 2 {
				t.Fatalf("the bucket has narinfos %v and %d NARs; want those of own and app only", infosIn, len(nars))
			}
			var records []string
			for _, k := range other {
				if strings.HasPrefix(k, layout.UpstreamDir) {
					records = append(records, k)
				}
			}
			// The record is written with a root too: a push killed
			// between its narinfos and its manifest leaves them recorded.
			if tc.name == "root" {
				checkManifestUpstream(t, b, map[string]bool{upA: true, upB: true})
			}
			if len(records) != 1 {
				t.Fatalf("upstream records %v; want one", records)
			}
			r, err := roots.ReadUpstream(context.Background(), b, records[0])
			if err != nil || len(r.Paths) != 2 || r.Paths[0].Signers[0] != "upstream-test-1" {
				t.Fatalf("upstream record %+v, %v; want upA and upB signed by upstream-test-1", r, err)
			}

			// Nix, with the upstream first and the bucket (through serve)
			// second, both keys trusted, substitutes the closure and
			// builds nothing (max-jobs 0).
			s := startServe(t, creds(srv), "--cache", url)
			root := t.TempDir()
			_, err = nixtest.Output(context.Background(), []string{"XDG_CACHE_HOME=" + t.TempDir()}, "nix-store",
				"--store", "local?root="+root, "--realise", app, "--max-jobs", "0",
				"--option", "substituters", "file://"+upDir+" "+s.base,
				"--option", "trusted-public-keys", upPub+" "+ownPub, "--option", "require-sigs", "true",
				"--option", "narinfo-cache-negative-ttl", "0",
				"--option", "sandbox", "false", "--option", "build-users-group", "")
			if err != nil {
				t.Fatalf("nix could not substitute the closure from both caches: %v", err)
			}
			nixtest.AssertInStore(t, root, []string{upA, upB, own, app})

			code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", url, "--trusted-public-key", ownPub)
			if code != 0 || !strings.Contains(stdout, ", 2 references left to upstream") {
				t.Errorf("verify: exit %d, %q (%s); want ok with 2 references left to upstream", code, stdout, stderr)
			}
			code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", url, "--deep", "--json")
			var vr struct {
				Faults   []struct{ Kind string } `json:"faults"`
				Upstream int                     `json:"upstreamReferences"`
			}
			if err := json.Unmarshal([]byte(stdout), &vr); code != 0 || err != nil || vr.Upstream != 2 || len(vr.Faults) != 0 {
				t.Errorf("verify --deep --json: exit %d, %q (%s); want no faults and upstreamReferences 2", code, stdout, stderr)
			}
			code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", url, "--require-complete", "--json")
			if err := json.Unmarshal([]byte(stdout), &vr); code != exitFailure || err != nil || len(vr.Faults) != 2 || vr.Faults[0].Kind != "missing-reference" {
				t.Errorf("verify --require-complete: exit %d, %q (%s); want %d and 2 missing-reference faults (own→upB, app→upA)", code, stdout, stderr, exitFailure)
			}

			code, stdout, stderr = runBin(t, creds(srv), "stats", "--cache", url)
			if code != 0 || !strings.Contains(stdout, "\n2 references left to upstream\n") {
				t.Errorf("stats: exit %d, %q (%s); want 2 references left to upstream", code, stdout, stderr)
			}

			code, stdout, stderr = runBin(t, creds(srv), "stats", "--cache", url, "--json")
			var sr struct {
				Upstream int `json:"upstreamReferences"`
				Roots    []struct {
					Missing  int `json:"missing"`
					Upstream int `json:"upstream"`
				} `json:"roots"`
			}
			if err := json.Unmarshal([]byte(stdout), &sr); code != 0 || err != nil || sr.Upstream != 2 ||
				tc.name == "root" && (len(sr.Roots) != 1 || sr.Roots[0].Upstream != 2 || sr.Roots[0].Missing != 0) {
				t.Errorf("stats --json: exit %d, %q (%s); want upstreamReferences 2 (and the root's 2 paths upstream, none missing)", code, stdout, stderr)
			}

			if tc.name == "root" {
				before := listing(t, b)
				code, stdout, stderr = runBin(t, creds(srv), "gc", "--cache", url, "--grace", "0s")
				// gc leaves its record, gc/last-run.json, and nothing else.
				after := slices.DeleteFunc(listing(t, b), func(o string) bool { return strings.HasPrefix(o, gc.LastRunKey+" ") })
				if code != 0 || strings.Join(after, "\n") != strings.Join(before, "\n") {
					t.Errorf("gc --grace 0s with the root: exit %d, %q (%s); the bucket went from %q to %q", code, stdout, stderr, before, after)
				}
			}
		})
	}
}

// checkManifestUpstream checks that the bucket's one root manifest marks
// exactly the paths of want as upstream.
func checkManifestUpstream(t *testing.T, b s3cache.Bucket, want map[string]bool) {
	t.Helper()
	var keys []string
	err := b.List(context.Background(), roots.Prefix, func(o s3cache.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil || len(keys) != 1 {
		t.Fatalf("root manifests %v, %v; want one", keys, err)
	}
	m, err := roots.Read(context.Background(), b, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Paths {
		if e.Upstream != want[e.Path] || e.Upstream && e.NAR != "" {
			t.Errorf("manifest entry %+v: upstream %v, want %v", e, e.Upstream, want[e.Path])
		}
	}
}
