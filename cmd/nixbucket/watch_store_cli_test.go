package main

import (
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/queue"
)

// TestWatchPathGone queues a path, deletes it from the local store, and
// runs watch --once: the other path queued is pushed, the gone one is
// failed with an error that says so (in the queue and in the one-line
// summary), and watch exits 1.
func TestWatchPathGone(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	paths := watchSamplePaths(t, "watch-gone-"+s3test.RandomHex(4), "lib", "dag")
	gone, kept := paths[0], paths[1]
	f.add(t, paths...)
	nixtest.Run(t, "nix-store", "--delete", gone)
	code, stdout, stderr := runBin(t, creds(f.srv), f.args("", "--once")...)
	if code != 1 {
		t.Fatalf("watch --once: exit %d, want 1: %s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "nixbucket: 1 queued path pushed, 1 failed (nixbucket queue lists them): "+gone+" is no longer valid in the local store") {
		t.Errorf("summary line %q", last)
	}
	if !regexp.MustCompile(`level=WARN msg="paths no longer valid in the local store, nor in the cache, are failed" paths=1 first=` + regexp.QuoteMeta(gone) + "\n").MatchString(stderr) {
		t.Errorf("no WARN line for the gone path:\n%s", stderr)
	}
	f.assertArrived(t, kept)
	es, err := f.q.Entries(t.Context(), queue.Failed, 0)
	if err != nil || len(es) != 1 || es[0].Path != gone || !strings.Contains(es[0].LastError, "no longer valid in the local store") {
		t.Errorf("failed entries %+v (%v), want %s with its error", es, err, gone)
	}
}

// TestWatchStore runs watch --watch-store: a path built after it started
// is queued and pushed without any hook, while the store's older paths
// are not; a second watch on the same queue is refused with one line;
// --once with --watch-store is a usage error.
func TestWatchStore(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	old := watchSamplePaths(t, "watch-store-old", "lib")[0]
	if code, _, stderr := runBin(t, creds(f.srv), f.args("", "--once", "--watch-store")...); code != 2 {
		t.Errorf("--once --watch-store: exit %d, want 2: %s", code, stderr)
	} else {
		oneErrorLine(t, stderr)
	}
	p := startWatch(t, creds(f.srv), f.args("", "--watch-store", "--batch-wait", "10ms")...)
	p.waitFor(t, watchStarted, 1)

	code, _, stderr := runBin(t, creds(f.srv), f.args("", "--once")...)
	if code != 1 || !strings.Contains(stderr, "another watch is draining this queue (pid ") {
		t.Errorf("second watch: exit %d: %s", code, stderr)
	}
	oneErrorLine(t, stderr)

	built := watchSamplePaths(t, "watch-store-"+s3test.RandomHex(8), "app")[0]
	b := f.srv.Open(t, f.bucket)
	// Other tests build paths too, and watch pushes them: wait for the
	// batch that has ours.
	for n := 1; !keysUnder(t, b, layout.NarInfoKeyOf(built))[layout.NarInfoKeyOf(built)]; n++ {
		p.waitFor(t, watchBatchPushed, n)
	}
	f.assertArrived(t, built)
	if keysUnder(t, b, layout.NarInfoKeyOf(old))[layout.NarInfoKeyOf(old)] {
		t.Errorf("%s, in the store before watch started, was pushed", old)
	}
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t); code != 0 {
		t.Errorf("watch after SIGINT: exit %d:\n%s", code, p.output())
	}
}
