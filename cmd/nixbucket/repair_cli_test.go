package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// narinfoOf reads the narinfo of path from b.
func narinfoOf(t *testing.T, b s3cache.Bucket, path string) *narinfo.NarInfo {
	t.Helper()
	body, err := s3cache.ReadSmall(context.Background(), b, layout.NarInfoKeyOf(path), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ni, err := narinfo.ParseString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

// spoil replaces the object at key with f of its bytes.
func spoil(t *testing.T, b s3cache.Bucket, key string, f func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	data, err := s3cache.ReadSmall(ctx, b, key, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	data = f(data)
	if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// substituteFrom has real Nix, trusting only key, substitute paths from b
// through serve.
func substituteFrom(t *testing.T, b s3cache.Bucket, key *signing.SecretKey, paths []string) {
	t.Helper()
	web := httptest.NewServer(serve.Handler(b, nil))
	defer web.Close()
	root, err := nixtest.Substitute(t, web.URL, key.PublicKey().String(), paths)
	if err != nil {
		t.Fatalf("nix could not substitute the repaired closure: %v", err)
	}
	nixtest.AssertInStore(t, root, paths)
}

// TestVerifyRepairCommand damages three NARs of a pushed closure
// (overwritten, deleted, truncated): `verify --deep --repair --json` exits
// 0 and lists them repaired, a deep verify with the trusted key is clean
// again, and Nix substitutes the closure. A narinfo of a path the local
// store lacks is listed as not repaired, with exit 1; --repair without
// --deep is a usage error.
func TestVerifyRepairCommand(t *testing.T) {
	f := nixtest.Sample(t, 5, "cli-repair")
	app := nixtest.Build(t, f, "app")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", app)
	key, _ := signing.GenerateSecretKey("cli-repair-1")
	srv := s3test.Start(t, s3test.VersityGW)
	if code, _, stderr := runBin(t, append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode()), "push", "--cache", srv.URL, app); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	b := srv.Open(t, srv.Bucket)
	ctx := context.Background()

	code, _, stderr := runBin(t, creds(srv), "verify", "--cache", srv.URL, "--repair")
	if code != exitUsage || !strings.Contains(stderr, "--deep") {
		t.Errorf("verify --repair without --deep: exit %d, stderr %q", code, stderr)
	}
	oneErrorLine(t, stderr)

	var damaged []string
	for i, p := range closure[:3] {
		ni := narinfoOf(t, b, p)
		damaged = append(damaged, layout.NarInfoKeyOf(p))
		switch i {
		case 0:
			spoil(t, b, ni.URL, func(d []byte) []byte { copy(d[len(d)/2:], "overwritten"); return d })
		case 1:
			if err := b.Delete(ctx, ni.URL); err != nil {
				t.Fatal(err)
			}
		case 2:
			spoil(t, b, ni.URL, func(d []byte) []byte { return d[:len(d)/2] })
		}
	}
	slices.Sort(damaged)

	code, stdout, stderr := runBin(t, creds(srv), "verify", "--cache", srv.URL, "--deep", "--repair", "--json")
	if code != 0 {
		t.Fatalf("verify --deep --repair: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var r verify.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("verify --json: %v: %q", err, stdout)
	}
	var repaired []string
	for _, rp := range r.Repaired {
		repaired = append(repaired, rp.Key)
	}
	if !slices.Equal(repaired, damaged) || len(r.Unrepaired) != 0 || len(r.Faults) < 3 {
		t.Errorf("repaired %q, unrepaired %v, faults %v; want %q repaired", repaired, r.Unrepaired, r.Faults, damaged)
	}

	pub := key.PublicKey().String()
	code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", srv.URL, "--deep", "--trusted-public-key", pub)
	if code != 0 || !strings.HasPrefix(stdout, "ok: ") {
		t.Fatalf("verify after the repair: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	substituteFrom(t, b, key, closure)

	// A narinfo of a path this store never had, its NAR missing.
	absent := *narinfoOf(t, b, app)
	absentHash := "0000000000000000000000000000000c"
	absent.StorePath = filepath.Dir(app) + "/" + absentHash + "-absent"
	absent.URL = "nar/" + absentHash + ".nar.xz"
	if err := push.PutNarInfo(ctx, b, &absent); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", srv.URL, "--deep", "--repair")
	t.Logf("verify --deep --repair:\n%s%s", stdout, stderr)
	want := "not repaired " + absentHash + ".narinfo: " + absent.StorePath + ": not in the local store\n"
	if code != exitFailure || !strings.Contains(stdout, want) || !strings.Contains(stdout, "(NARs repaired: 0, not: 1)") {
		t.Errorf("verify --deep --repair with a path the store lacks: exit %d, stdout %q; want exit 1 and %q", code, stdout, want)
	}
	oneErrorLine(t, stderr)
}

// TestPushRepair pushes a closure, then damages the NAR of one path (the
// 12 MiB one, uploaded again in several parts) and deletes the narinfo of
// another: `push --repair` pushes the missing path as a push does and
// repairs the damaged NAR; the cache verifies clean and Nix substitutes
// the closure. --repair with --dry-run is a usage error.
func TestPushRepair(t *testing.T) {
	f := nixtest.Sample(t, 5, "cli-push-repair")
	outs := nixtest.Build(t, f, "app", "blob")
	app, blob := outs[0], outs[1]
	closure := nixtest.Lines(t, "nix-store", "-qR", app, blob)
	key, _ := signing.GenerateSecretKey("cli-push-repair-1")
	srv := s3test.Start(t, s3test.MinIO)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	url := srv.URL
	if code, _, stderr := runBin(t, env, "push", "--cache", url, app, blob); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	b := srv.Open(t, srv.Bucket)
	spoil(t, b, narinfoOf(t, b, blob).URL, func(d []byte) []byte { copy(d[len(d)/3:], "overwritten"); return d })
	if err := b.Delete(context.Background(), layout.NarInfoKeyOf(app)); err != nil {
		t.Fatal(err)
	}

	code, _, stderr := runBin(t, env, "push", "--cache", url, "--repair", "--dry-run", app)
	if code != exitUsage {
		t.Errorf("push --repair --dry-run: exit %d, stderr %q", code, stderr)
	}
	oneErrorLine(t, stderr)

	code, stdout, stderr := runBin(t, env, "push", "--cache", url, "--repair", "--json", app, blob)
	if code != 0 {
		t.Fatalf("push --repair: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var res struct {
		push.Result
		NARsChecked int             `json:"narsChecked"`
		Repaired    []verify.Repair `json:"repaired"`
		Unrepaired  []verify.Repair `json:"unrepaired"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("push --repair --json: %v: %q", err, stdout)
	}
	if res.Pushed != 1 || res.NARsChecked != len(closure)-1 || len(res.Repaired) != 1 || res.Repaired[0].StorePath != blob || len(res.Unrepaired) != 0 {
		t.Errorf("push --repair: %s; want app pushed, %d NARs checked and %s repaired", stdout, len(closure)-1, blob)
	}

	code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", srv.URL, "--deep", "--trusted-public-key", key.PublicKey().String())
	if code != 0 {
		t.Fatalf("verify after push --repair: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	substituteFrom(t, b, key, closure)
}
