package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/roots"
)

// TestSkipUpstreamThroughServe pushes with `push --cache http://…
// --skip-signed-by U` through `serve --accept-push` into MinIO, the
// closure of TestSkipUpstream (upA and upB signed locally by U, served by
// a file:// cache playing the upstream): the bucket then holds the own
// paths and one upstream record only, verify reports the references left
// to upstream and no fault, and real Nix with both caches as substituters
// substitutes the whole closure, building nothing.
func TestSkipUpstreamThroughServe(t *testing.T) {
	t.Parallel()
	fx := newUpstreamFixture(t)
	upA, upB, own, app := fx.upA, fx.upB, fx.own, fx.app
	dir, upPub, ownSec, ownPub, upDir := fx.dir, fx.upPub, fx.ownSec, fx.ownPub, fx.upDir

	srv := s3test.Start(t, s3test.MinIO)
	bucket := srv.NewBucket(t)
	url := srv.StoreURL(bucket)
	token := "cli-upstream-" + s3test.RandomHex(16)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	base, serveLog := startPushServe(t, creds(srv), "--cache", url, "--accept-push", "--push-token-file", tokenFile,
		"--trusted-public-key", ownPub)
	env := []string{pushTokenEnv + "=" + token}

	code, stdout, stderr := runBin(t, env, "push", "--cache", base, "--secret-key-file", ownSec, "--skip-signed-by", "upstream-test-1", "--json", app)
	if code != 0 {
		t.Fatalf("push --cache %s --skip-signed-by: exit %d: %s%s\nserve: %s", base, code, stdout, stderr, serveLog)
	}
	p := decodePush(t, stdout)
	if p.num(t, "pushed") != 2 || p.num(t, "upstream") != 2 {
		t.Fatalf("push --json = %s; want 2 paths pushed and 2 left upstream", stdout)
	}

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
	if len(records) != 1 {
		t.Fatalf("upstream records %v; want one", records)
	}
	r, err := roots.ReadUpstream(context.Background(), b, records[0])
	if err != nil || len(r.Paths) != 2 || r.Paths[0].Signers[0] != "upstream-test-1" {
		t.Fatalf("upstream record %+v, %v; want upA and upB signed by upstream-test-1", r, err)
	}

	code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", url, "--trusted-public-key", ownPub, "--json")
	var vr struct {
		Faults   []struct{ Kind string } `json:"faults"`
		Upstream int                     `json:"upstreamReferences"`
	}
	if err := json.Unmarshal([]byte(stdout), &vr); code != 0 || err != nil || vr.Upstream != 2 || len(vr.Faults) != 0 {
		t.Errorf("verify --json: exit %d, %q (%s); want no faults and upstreamReferences 2", code, stdout, stderr)
	}

	// Nix, with the upstream first and the pushing server second,
	// substitutes the closure and builds nothing (max-jobs 0).
	root := t.TempDir()
	_, err = nixtest.Output(context.Background(), []string{"XDG_CACHE_HOME=" + t.TempDir()}, "nix-store",
		"--store", "local?root="+root, "--realise", app, "--max-jobs", "0",
		"--option", "substituters", "file://"+upDir+" "+base,
		"--option", "trusted-public-keys", upPub+" "+ownPub, "--option", "require-sigs", "true",
		"--option", "narinfo-cache-negative-ttl", "0",
		"--option", "sandbox", "false", "--option", "build-users-group", "")
	if err != nil {
		t.Fatalf("nix could not substitute the closure from both caches: %v", err)
	}
	nixtest.AssertInStore(t, root, []string{upA, upB, own, app})
	if strings.Contains(serveLog.String(), token) {
		t.Errorf("the push token is in serve's log")
	}
}
