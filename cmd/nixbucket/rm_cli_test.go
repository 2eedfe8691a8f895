package main

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/remove"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// TestRmCLI runs the real binary's rm on a pushed closure: a referenced
// path is refused in one line naming its referrer, a path not in the
// cache exits 3, both deleting nothing; a dry run's JSON lists referrers
// first and deletes nothing; --with-referrers warns of the root and
// removes, after which the real Nix no longer substitutes the removed
// path through serve but still substitutes the rest.
func TestRmCLI(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	outs := nixtest.Build(t, nixtest.Sample(t, 4, "rm-cli"), "app", "dag", "lib")
	app, dag, lib := outs[0], outs[1], outs[2]
	srv := s3test.Start(t, s3test.MinIO)
	key, err := signing.GenerateSecretKey("rm-cli-1")
	if err != nil {
		t.Fatal(err)
	}
	env := append(creds(srv), "NIXBUCKET_CACHE="+srv.URL, "NIXBUCKET_SECRET_KEY="+key.Encode())
	if code, _, stderr := runBin(t, env, "push", "--root", "main", app, dag); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	b := srv.Open(t, srv.Bucket)
	before := listing(t, b)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"referenced", []string{"rm", lib}, exitFailure, []string{"refusing to remove " + lib, app, "--with-referrers"}},
		{"flags after the path", []string{"rm", lib, "--dry-run"}, exitFailure, []string{"refusing to remove " + lib, app}},
		{"not in the cache", []string{"rm", "--with-referrers", app, strings.Repeat("1", 32)}, exitNotFound, []string{strings.Repeat("1", 32) + ": not in the cache"}},
		{"not a store path", []string{"rm", "--with-referrers", "nixpkgs#hello"}, exitNotFound, []string{"nixpkgs#hello"}},
		{"no path", []string{"rm"}, exitUsage, []string{"rm needs at least one PATH"}},
	} {
		code, stdout, stderr := runBin(t, env, tc.args...)
		oneErrorLine(t, stderr)
		if code != tc.code || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q; want exit %d and nothing", tc.name, code, stdout, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q does not say %q", tc.name, stderr, w)
			}
		}
	}

	code, stdout, stderr := runBin(t, env, "rm", "--dry-run", "--json", "--with-referrers", lib)
	if code != 0 {
		t.Fatalf("rm --dry-run --json: exit %d: %s", code, stderr)
	}
	var rep remove.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("rm --json printed %q: %v", stdout, err)
	}
	if !rep.DryRun || !slices.Equal(rep.Removed, []string{app, lib}) || !slices.Equal(rep.Referrers, []string{app}) || len(rep.Roots) != 2 || len(rep.NARs) != 2 {
		t.Errorf("rm --dry-run --json = %+v; want app then lib removed, app a referrer, both listed by a root, 2 NARs", rep)
	}
	// Beside a push (a shared lock), rm fails and deletes nothing.
	pushLock, err := lock.Acquire(t.Context(), b, lock.Shared, lock.Options{Command: "test push", Settle: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runBin(t, env, "rm", "--with-referrers", lib)
	if code != exitFailure || !strings.Contains(stderr, "cache is locked") || !strings.Contains(stderr, "test push") {
		t.Errorf("rm beside a push: exit %d: %s; want 1 naming the push's lock", code, stderr)
	}
	if err := pushLock.Release(); err != nil {
		t.Fatal(err)
	}
	if got := listing(t, b); !slices.Equal(got, before) {
		t.Fatalf("refusals, a dry run and a locked rm changed the bucket")
	}

	code, stdout, stderr = runBin(t, env, "rm", "--with-referrers", lib)
	if code != 0 {
		t.Fatalf("rm --with-referrers: exit %d: %s", code, stderr)
	}
	for _, w := range []string{"removed " + app + " (referrer)\nremoved " + lib + "\n", "removed 2 paths (1 referrer)", "2 NARs"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("rm --with-referrers printed %q, want %q", stdout, w)
		}
	}
	for _, p := range []string{app, lib} {
		if !strings.Contains(stderr, "warning: "+p+" is listed by root main") {
			t.Errorf("rm --with-referrers: stderr %q has no warning that root main lists %s", stderr, p)
		}
	}
	if rep, err := verify.Check(t.Context(), b, verify.Options{}); err != nil || !rep.OK() {
		t.Fatalf("verify after rm: %v %v", err, rep)
	}
	if code, stdout, stderr := runBin(t, env, "verify"); code != 0 {
		t.Errorf("nixbucket verify after rm: exit %d: %s%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"gc", "--dry-run"}, {"stats"}} {
		if code, _, stderr := runBin(t, env, args...); code != 0 {
			t.Errorf("nixbucket %s after rm of rooted paths: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}

	web := httptest.NewServer(serve.Handler(b, nil))
	defer web.Close()
	if _, err := nixtest.Substitute(t, web.URL, key.PublicKey().String(), []string{app}); err == nil {
		t.Errorf("Nix substituted %s after rm", app)
	}
	root, err := nixtest.Substitute(t, web.URL, key.PublicKey().String(), []string{dag})
	if err != nil {
		t.Fatalf("Nix could not substitute %s, which rm left: %v", dag, err)
	}
	nixtest.AssertInStore(t, root, []string{dag})
}
