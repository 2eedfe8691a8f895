package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/queue"
	"github.com/nixbucket/nixbucket/s3cache"
)

// watchFixture is a bucket, a signing key and a queue for watch tests.
type watchFixture struct {
	srv     *s3test.Server
	bucket  string
	keyFile string
	qpath   string
	q       *queue.Queue
}

func newWatchFixture(t *testing.T) *watchFixture {
	t.Helper()
	srv := s3test.Start(t, s3test.MinIO)
	dir := t.TempDir()
	_, keyFile := writeKey(t, dir, "watch-1")
	f := &watchFixture{srv: srv, bucket: srv.NewBucket(t), keyFile: keyFile, qpath: filepath.Join(dir, "queue.db")}
	q, err := queue.Open(t.Context(), f.qpath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	f.q = q
	return f
}

// args are watch's arguments for the cache at url (the bucket's own
// when "").
func (f *watchFixture) args(url string, more ...string) []string {
	if url == "" {
		url = f.srv.StoreURL(f.bucket)
	}
	return append([]string{"watch", "--cache", url, "--secret-key-file", f.keyFile, "--queue", f.qpath}, more...)
}

func (f *watchFixture) add(t *testing.T, paths ...string) {
	t.Helper()
	if err := f.q.Add(t.Context(), "", paths); err != nil {
		t.Fatal(err)
	}
}

func (f *watchFixture) status(t *testing.T) queue.Status {
	t.Helper()
	st, err := f.q.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// assertArrived checks that the closures of tops are in the bucket,
// signed, and that the bucket is sound.
func (f *watchFixture) assertArrived(t *testing.T, tops ...string) {
	t.Helper()
	b := f.srv.Open(t, f.bucket)
	have := keysUnder(t, b, "")
	for _, p := range nixtest.Lines(t, "nix-store", append([]string{"-qR"}, tops...)...) {
		if !have[layout.NarInfoKeyOf(p)] {
			t.Errorf("%s is not in the cache", p)
		}
	}
	data, err := s3cache.ReadSmall(t.Context(), b, layout.NarInfoKeyOf(tops[0]), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nSig: watch-1:") {
		t.Errorf("%s is not signed by watch-1:\n%s", tops[0], data)
	}
	assertSound(t, b, "after watch")
}

// watchSamplePaths builds SampleExpr's attributes (salted) and returns one
// output path per attribute.
func watchSamplePaths(t *testing.T, salt string, attrs ...string) []string {
	t.Helper()
	f := nixtest.Sample(t, 6, salt)
	var out []string
	for _, a := range attrs {
		out = append(out, nixtest.Build(t, f, a)[0])
	}
	return out
}

// TestWatchOnce queues real store paths and runs watch --once: their
// closures arrive, signed, the queue is empty with its last success set,
// and the run logs one line per batch; a second run has nothing to do.
func TestWatchOnce(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	paths := watchSamplePaths(t, "watch-once", "app", "dag")
	f.add(t, paths...)
	code, stdout, stderr := runBin(t, creds(f.srv), f.args("", "--once", "--root", "ci")...)
	if code != 0 {
		t.Fatalf("watch --once: exit %d: %s%s", code, stdout, stderr)
	}
	if stdout != "pushed 2 queued paths in 1 batch\n" {
		t.Errorf("stdout %q", stdout)
	}
	if n := strings.Count(stderr, `msg="batch pushed"`); n != 1 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("want exactly one log line, a batch's:\n%s", stderr)
	}
	closure := nixtest.Lines(t, "nix-store", "-qR", paths[0], paths[1])
	if !strings.Contains(stderr, " paths=2 closure="+strconv.Itoa(len(closure))+" pushed="+strconv.Itoa(len(closure))+" present=0 ") {
		t.Errorf("the batch line does not count the closure of %d paths:\n%s", len(closure), stderr)
	}
	f.assertArrived(t, paths...)
	st := f.status(t)
	if st.Pending+st.InFlight+st.Failed != 0 || st.LastSuccess.IsZero() || st.Pushed != 2 {
		t.Errorf("queue after watch --once: %+v", st)
	}
	if len(keysUnder(t, f.srv.Open(t, f.bucket), "roots/ci/")) != 1 {
		t.Errorf("no root manifest for the batch")
	}
	code, stdout, stderr = runBin(t, creds(f.srv), f.args("", "--once")...)
	if code != 0 || stdout != "pushed 0 queued paths in 0 batches\n" || stderr != "" {
		t.Errorf("watch --once on an empty queue: exit %d: %q %q", code, stdout, stderr)
	}
}
