package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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

// lcRun runs nixbucket with args and returns its exit code, stdout and stderr.
func lcRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"nixbucket"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// lcMust runs nixbucket and fails the test on a non-zero exit.
func lcMust(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := lcRun(t, args...)
	if code != 0 {
		t.Fatalf("nixbucket %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestLifecycleCLI drives push --root, roots, gc, unlock and erase through
// the command line against a real S3 server and real Nix paths.
func TestLifecycleCLI(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 6, "cli-lifecycle")
	outs := nixtest.Build(t, f, "app", "dag")
	app, dag := outs[0], outs[1]
	srv := s3test.Start(t, s3test.VersityGW)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	key, err := signing.GenerateSecretKey("cli-lifecycle-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NIXBUCKET_SECRET_KEY", key.Encode())
	t.Setenv("NIXBUCKET_CACHE", srv.URL)
	b := srv.Open(t, srv.Bucket)

	if code, _, errOut := lcRun(t, "push", "--root", "../bad", app); code != exitUsage || !strings.Contains(errOut, "root name") {
		t.Fatalf("push --root ../bad: exit %d, %s; want a usage error", code, errOut)
	}
	lcMust(t, "push", "--root", "main", app)
	lcMust(t, "push", "--root", "old", dag)

	var list []roots.Root
	if err := json.Unmarshal([]byte(lcMust(t, "roots", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "main" || len(list[0].Manifests) != 1 || list[1].Name != "old" {
		t.Fatalf("roots list: %+v", list)
	}
	var m roots.Manifest
	if err := json.Unmarshal([]byte(lcMust(t, "roots", "show", "main", "--json")), &m); err != nil {
		t.Fatal(err)
	}
	closure := nixtest.Lines(t, "nix-store", "-qR", app)
	if len(m.TopLevel) != 1 || m.TopLevel[0] != app || len(m.Paths) != len(closure) {
		t.Fatalf("manifest has top level %v and %d paths; want %s and its %d-path closure", m.TopLevel, len(m.Paths), app, len(closure))
	}
	for _, e := range m.Paths {
		if e.NAR == "" || e.NarSize == 0 {
			t.Fatalf("manifest entry %+v lacks its NAR key or size", e)
		}
	}
	if out := lcMust(t, "roots", "show", "main"); !strings.Contains(out, app) || !strings.Contains(out, "not pinned") {
		t.Fatalf("roots show: %s", out)
	}
	lcMust(t, "roots", "pin", "main")
	if out := lcMust(t, "roots", "list"); !strings.Contains(out, "pinned") {
		t.Fatalf("roots list after pin: %s", out)
	}
	if code, _, _ := lcRun(t, "roots", "pin", "nosuch"); code != exitNotFound {
		t.Fatalf("roots pin nosuch: exit %d, want %d", code, exitNotFound)
	}
	if code, _, errOut := lcRun(t, "roots", "rm", "main"); code != exitUsage || !strings.Contains(errOut, "unpin it first") {
		t.Fatalf("roots rm of a pinned root: exit %d, %s; want a refusal", code, errOut)
	}
	lcMust(t, "roots", "unpin", "main")

	// gc with a lock held by a "push": fails clearly, deletes nothing.
	held := `{"kind":"shared","id":"ci","host":"runner-7","pid":42,"command":"push"}`
	if err := b.Put(context.Background(), "locks/shared-ci.json", strings.NewReader(held), int64(len(held)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := lcRun(t, "gc", "--grace", "0"); code != exitFailure || !strings.Contains(errOut, "runner-7") {
		t.Fatalf("gc beside a push lock: exit %d, %q; want exit 1 naming the holder", code, errOut)
	}
	// A push beside a running gc waits (here: not at all) and fails clearly.
	gcLock := `{"kind":"exclusive","id":"gc","host":"cron-1","pid":7,"command":"gc"}`
	if err := b.Put(context.Background(), "locks/exclusive-gc.json", strings.NewReader(gcLock), int64(len(gcLock)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := lcRun(t, "push", "--lock-wait", "0s", "--root", "main", app); code != exitFailure || !strings.Contains(errOut, "cron-1") {
		t.Fatalf("push beside a gc lock: exit %d, %q; want exit 1 naming the holder", code, errOut)
	}
	if out := lcMust(t, "unlock", "--all"); !strings.Contains(out, "removed 2 locks") {
		t.Fatalf("unlock --all: %s", out)
	}

	// Remove root old: a dry run lists dag's closure, a first gc condemns
	// it, a second (grace 0) deletes it.
	lcMust(t, "roots", "rm", "old")
	// Condemnation times are whole seconds: objects written in the second
	// of their condemnation count as rewritten since, and wait one more run.
	time.Sleep(time.Second)
	dry := lcMust(t, "gc", "--grace", "0", "--dry-run")
	dagKey := strings.TrimPrefix(dag, "/nix/store/")[:32] + ".narinfo"
	if !strings.Contains(dry, "condemn "+dagKey) {
		t.Fatalf("gc --dry-run does not say it condemns %s:\n%s", dagKey, dry)
	}
	var rep gc.Report
	if err := json.Unmarshal([]byte(lcMust(t, "gc", "--grace", "0", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Condemned == 0 || rep.Deleted != 0 {
		t.Fatalf("first gc: %+v; want condemned, nothing deleted", rep)
	}
	out := lcMust(t, "gc", "--grace", "0")
	if !strings.Contains(out, "delete "+dagKey) {
		t.Fatalf("second gc did not delete %s:\n%s", dagKey, out)
	}
	if _, err := b.Stat(context.Background(), dagKey); err == nil {
		t.Fatalf("%s is still there", dagKey)
	}
	if code, out, _ := lcRun(t, "verify", "--trusted-public-key", key.PublicKey().String()); code != 0 {
		t.Fatalf("verify after gc: exit %d: %s", code, out)
	}

	// stats: figures from the listing, a recorded point, a page.
	var st stats.Report
	if err := json.Unmarshal([]byte(lcMust(t, "stats", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	objects, narinfos := 0, 0
	if err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		objects++
		if strings.HasSuffix(o.Key, ".narinfo") {
			narinfos++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// GETs: the manifest and nix-cache-info; the manifest vouches for
	// every narinfo.
	if st.Total.Objects != objects || st.Paths != narinfos || len(st.Roots) != 1 || st.Roots[0].Paths != len(closure) || st.Gets != 2 || st.NarInfoGets != 0 {
		t.Fatalf("stats: %+v; want %d objects, %d paths, root main of %d paths, 2 GETs", st, objects, narinfos, len(closure))
	}
	page := filepath.Join(t.TempDir(), "stats.html")
	if out := lcMust(t, "stats", "--record", "--html", page); !strings.Contains(out, "recorded in stats/history.jsonl (1 points)") || !strings.Contains(out, "root main") {
		t.Fatalf("stats --record: %s", out)
	}
	if html, err := os.ReadFile(page); err != nil || !strings.Contains(string(html), "<svg") {
		t.Fatalf("stats --html wrote no chart: %v", err)
	}

	// erase refuses without --yes, counts with --dry-run, then empties.
	if code, _, errOut := lcRun(t, "erase"); code != exitUsage || !strings.Contains(errOut, "--yes") {
		t.Fatalf("erase without --yes: exit %d, %s", code, errOut)
	}
	if out := lcMust(t, "erase", "--prefix", "roots/", "--dry-run"); !strings.Contains(out, "would delete 1 objects") {
		t.Fatalf("erase --prefix roots/ --dry-run: %s", out)
	}
	lcMust(t, "erase", "--yes")
	n := 0
	if err := b.List(context.Background(), "", func(s3cache.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("after erase: %d objects, %v", n, err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"90m", "1h30m0s", true}, {"14d", "336h0m0s", true}, {"2w", "336h0m0s", true}, {"1d12h", "36h0m0s", true},
		{"1w2d", "216h0m0s", true}, {"x", "", false}, {"d", "", false}, {"-1h", "", false}, {"3dd", "", false},
	} {
		d, err := parseDuration(tc.in)
		if (err == nil) != tc.ok || (tc.ok && d.String() != tc.want) {
			t.Errorf("parseDuration(%q) = %v, %v; want %s, ok %v", tc.in, d, err, tc.want, tc.ok)
		}
	}
}
