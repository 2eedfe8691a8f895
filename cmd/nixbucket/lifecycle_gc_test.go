package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/stats"
)

// TestGCFailClosedCLI: with a corrupt root manifest in the bucket, the
// real binary's gc (and its dry run) exits 1 naming the manifest and
// saying that it deleted nothing, and the bucket is unchanged; stats says
// gc would refuse. Once the manifest is removed, gc deletes.
func TestGCFailClosedCLI(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 4, "cli-failclosed")
	outs := nixtest.Build(t, f, "app", "dag")
	app, dag := outs[0], outs[1]
	srv := s3test.Start(t, s3test.MinIO)
	key, err := signing.GenerateSecretKey("cli-failclosed-1")
	if err != nil {
		t.Fatal(err)
	}
	env := append(creds(srv), "NIXBUCKET_CACHE="+srv.URL, "NIXBUCKET_SECRET_KEY="+key.Encode())
	must := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := runBin(t, env, args...)
		if code != 0 {
			t.Fatalf("nixbucket %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return stdout
	}
	must("push", "--root", "main", app)
	must("push", "--root", "old", dag)
	must("roots", "rm", "old")
	time.Sleep(time.Second)    // condemnation times are whole seconds
	must("gc", "--grace", "0") // condemns dag's closure
	b := srv.Open(t, srv.Bucket)
	bad := roots.Key("main", time.Now())
	body := `{"version": 1, "name": "main", "paths": [`
	if err := b.Put(context.Background(), bad, strings.NewReader(body), int64(len(body)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	before := listing(t, b)
	for _, args := range [][]string{{"gc", "--grace", "0"}, {"gc", "--grace", "0", "--dry-run"}, {"gc", "--grace", "0", "--json"}} {
		code, stdout, stderr := runBin(t, env, args...)
		if code != exitFailure || !strings.Contains(stderr, "parsing root manifest "+bad) || !strings.Contains(stderr, "gc deleted nothing") {
			t.Errorf("nixbucket %s with a corrupt manifest: exit %d, stderr %q; want exit %d naming %s and saying nothing was deleted",
				strings.Join(args, " "), code, stderr, exitFailure, bad)
		}
		if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines != 0 || stdout != "" {
			t.Errorf("nixbucket %s: stdout %q, stderr %q; want one line on stderr", strings.Join(args, " "), stdout, stderr)
		}
	}
	if after := listing(t, b); !slices.Equal(before, after) {
		t.Fatalf("gc changed the bucket: %d objects before, %d after", len(before), len(after))
	}
	var st stats.Report
	if err := json.Unmarshal([]byte(must("stats", "--json", "--grace", "0")), &st); err != nil {
		t.Fatal(err)
	}
	if !st.GCRefuses || st.Reclaimable.Objects != 0 || !slices.ContainsFunc(st.Notes, func(n string) bool { return strings.Contains(n, bad) }) {
		t.Fatalf("stats with a corrupt manifest: refuses %v, reclaimable %v, notes %q; want gc's refusal explained", st.GCRefuses, st.Reclaimable, st.Notes)
	}
	if err := b.Delete(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	var rep gc.Report
	if err := json.Unmarshal([]byte(must("gc", "--grace", "0", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	dagKey := strings.TrimPrefix(dag, "/nix/store/")[:32] + ".narinfo"
	if !slices.ContainsFunc(rep.Actions, func(a gc.Action) bool { return a.Op == gc.OpDelete && a.Key == dagKey }) {
		t.Fatalf("gc without the corrupt manifest did not delete %s: %+v", dagKey, rep)
	}
	if code, stdout, _ := runBin(t, env, "verify", "--trusted-public-key", key.PublicKey().String()); code != 0 {
		t.Fatalf("verify after gc: exit %d: %s", code, stdout)
	}
}

// TestGCKeepWithinCLI: --keep-within expires, per root, the manifests
// older than the window (the time in the key counts), and a bad duration
// is a usage error.
func TestGCKeepWithinCLI(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 3, "cli-keepwithin")
	app := nixtest.Build(t, f, "app")[0]
	srv := s3test.Start(t, s3test.VersityGW)
	env := append(creds(srv), "NIXBUCKET_CACHE="+srv.URL)
	code, _, stderr := runBin(t, env, "push", "--root", "main", app)
	if code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	// The same closure recorded twenty days ago.
	ctx := context.Background()
	b := srv.Open(t, srv.Bucket)
	x, err := roots.List(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	recent := x.Get("main").Manifests[0].Key
	m, err := roots.Read(ctx, b, recent)
	if err != nil {
		t.Fatal(err)
	}
	m.Created = time.Now().Add(-20 * 24 * time.Hour)
	old, err := roots.Write(ctx, b, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		within  string
		expired []string
	}{{"7d", []string{old}}, {"30d", nil}, {"1w", []string{old}}} {
		code, stdout, stderr := runBin(t, env, "gc", "--keep-within", tc.within, "--dry-run", "--json")
		var rep gc.Report
		if code != 0 || json.Unmarshal([]byte(stdout), &rep) != nil {
			t.Fatalf("gc --keep-within %s --dry-run: exit %d: %s", tc.within, code, stderr)
		}
		var expired []string
		for _, a := range rep.Actions {
			if a.Op == gc.OpExpire {
				expired = append(expired, a.Key)
			}
		}
		if !slices.Equal(expired, tc.expired) || rep.Kept != 2-len(tc.expired) {
			t.Errorf("gc --keep-within %s: expired %v, kept %d; want %v expired", tc.within, expired, rep.Kept, tc.expired)
		}
	}
	code, stdout, stderr := runBin(t, env, "gc", "--keep-within", "7d")
	if code != 0 || !strings.Contains(stdout, "expire "+old) {
		t.Fatalf("gc --keep-within 7d: exit %d, %q, %s", code, stdout, stderr)
	}
	if keys := listing(t, b); slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, old+" ") }) ||
		!slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, recent+" ") }) {
		t.Fatalf("after gc --keep-within 7d the bucket has %v; want %s gone, %s kept", keys, old, recent)
	}
	if code, _, stderr := runBin(t, env, "gc", "--keep-within", "soon"); code != exitUsage || !strings.Contains(stderr, "--keep-within") {
		t.Fatalf("gc --keep-within soon: exit %d, %s; want a usage error", code, stderr)
	}
}
