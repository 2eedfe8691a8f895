package gc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// TestUpstreamNotNeeded: paths a push left upstream (push.Options
// .SkipSignedBy) have no narinfo here, and gc never needs them: with a
// root whose live narinfos refer to them, gc a month later deletes
// nothing of the root's closure and does not fail; the upstream record
// of a push without a root is kept; verify still counts the references
// left upstream and finds no fault.
func TestUpstreamNotNeeded(t *testing.T) {
	f := buildFixture(t)
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	b := srv.Open(t, srv.Bucket)
	w0 := time.Now().UTC()

	// pushUp pushes the closure of names, the paths for which up is
	// true signed locally by the upstream key.
	pushUp := func(root string, up func(string) bool, names ...string) *push.Result {
		t.Helper()
		g := f.closureOf(t, names...)
		for _, p := range g.Paths() {
			if up(p) {
				g.Info(p).Signatures = append(g.Info(p).Signatures, "upstream-test-1:c2ln")
			}
		}
		opts := push.Options{
			Compression: "zstd", Keys: []*signing.SecretKey{f.key}, SkipSignedBy: []string{"upstream-test-1"},
			Lock: &lock.Options{Command: "test push", Settle: 10 * time.Millisecond, Wait: time.Minute},
		}
		if root != "" {
			opts.Root = &push.RootOptions{Name: root, TopLevel: []string{f.paths[names[0]]}, Now: func() time.Time { return w0 }}
		}
		res, err := push.Push(ctx, b, g, opts)
		if err != nil {
			t.Fatalf("pushing %v: %v", names, err)
		}
		return res
	}
	lib := map[string]bool{}
	for _, p := range f.closureOf(t, "libA").Paths() {
		lib[p] = true
	}
	res := pushUp("main", func(p string) bool { return lib[p] }, "appA")
	if res.Upstream == 0 || res.Pushed == 0 {
		t.Fatalf("push of appA left %d paths upstream and pushed %d; want some of each (appA refers to libA)", res.Upstream, res.Pushed)
	}
	// A second push, without a root: dagA, its first node left upstream.
	res = pushUp("", func(p string) bool { return strings.HasSuffix(p, "-daggcA-0") }, "dagA")
	if res.UpstreamRecord == "" {
		t.Fatalf("a push without a root whose narinfos refer to upstream paths wrote no record: %+v", res)
	}
	before := keys(t, b)
	rep := runGC(t, b, w0.Add(30*24*time.Hour), gc.Options{})
	after := keys(t, b)
	for _, p := range f.closureOf(t, "appA").Paths() {
		if lib[p] {
			continue
		}
		for _, k := range []string{layout.NarInfoKeyOf(p), readNarInfo(t, b, p).URL} {
			if !before[k] || !after[k] {
				t.Errorf("%s of the root's closure: in the bucket before gc %v, after %v", k, before[k], after[k])
			}
		}
	}
	if !after[res.UpstreamRecord] {
		t.Errorf("gc deleted the upstream record %s", res.UpstreamRecord)
	}
	for _, a := range rep.Actions {
		if strings.HasPrefix(a.Key, layout.UpstreamDir) {
			t.Errorf("gc acted on the upstream record: %+v", a)
		}
	}
	vr, err := verify.Check(ctx, b, verify.Options{TrustedKeys: signing.NewPublicKeys(f.key.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	if !vr.OK() || vr.UpstreamReferences == 0 {
		t.Errorf("verify after gc: faults %v, %d references left to upstream; want none and some", vr.Faults, vr.UpstreamReferences)
	}
}
