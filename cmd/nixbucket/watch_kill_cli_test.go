package main

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
)

// watchUploadGate is a reverse proxy in front of an S3 server that holds the
// first NAR upload request (a PUT under nar/) once armed: it reports on
// hit and holds the request until released, then forwards it, or drops
// the connection if abort.
type watchUploadGate struct {
	rp *httputil.ReverseProxy

	mu    sync.Mutex
	armed bool
	abort bool
	hit   chan struct{}
	held  chan struct{}
}

func newWatchUploadGate(t *testing.T, target string, abort bool) (*watchUploadGate, string) {
	t.Helper()
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &watchUploadGate{
		rp: &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(tu)
				pr.Out.Host = pr.In.Host // the signature covers the client's Host
			},
			ErrorLog: log.New(io.Discard, "", 0),
		},
		armed: true, abort: abort, hit: make(chan struct{}), held: make(chan struct{}),
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	t.Cleanup(g.release) // before srv.Close, which waits for the handlers
	return g, srv.URL
}

// release lets the held request go.
func (g *watchUploadGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.held:
	default:
		close(g.held)
	}
}

func (g *watchUploadGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/"+layout.NarDir) {
		g.mu.Lock()
		stop := g.armed
		g.armed = false
		g.mu.Unlock()
		if stop {
			close(g.hit)
			<-g.held
			if g.abort {
				panic(http.ErrAbortHandler)
			}
		}
	}
	g.rp.ServeHTTP(w, r)
}

// waitHit waits for the gate to hold an upload.
func (g *watchUploadGate) waitHit(t *testing.T, p *watchProc) {
	t.Helper()
	select {
	case <-g.hit:
	case <-time.After(watchDeadline):
		t.Fatalf("no NAR upload reached the gate in %v:\n%s", watchDeadline, p.output())
	}
}

// storeURL is the URL of bucket on srv through the proxy at endpoint.
func watchProxiedURL(bucket, endpoint string) string {
	return "s3://" + bucket + "?endpoint=" + endpoint + "&region=" + s3test.Region
}

// heldBatch starts a watch whose first NAR upload the gate holds (and,
// with abort, then breaks), queues the paths of the sample outputs named,
// and returns once the batch is in flight.
func heldBatch(t *testing.T, salt string, abort bool, outputs ...string) (*watchFixture, []string, *watchUploadGate, *watchProc) {
	t.Helper()
	f := newWatchFixture(t)
	paths := watchSamplePaths(t, salt, outputs...)
	gate, proxy := newWatchUploadGate(t, f.srv.Endpoint, abort)
	p := startWatch(t, creds(f.srv), f.args(watchProxiedURL(f.bucket, proxy), "--batch-wait", "10ms")...)
	p.waitFor(t, watchStarted, 1)
	f.add(t, paths...)
	gate.waitHit(t, p)
	return f, paths, gate, p
}

// TestWatchKilledMidBatch kills watch with SIGKILL while a NAR upload of
// its batch is held: the batch's entries stay in flight, the bucket is
// sound; a new watch --once requeues them, pushes every path (finding
// what was finished present) and leaves the queue empty.
func TestWatchKilledMidBatch(t *testing.T) {
	t.Parallel()
	f, paths, gate, p := heldBatch(t, "watch-kill", true, "app", "dag", "lib")
	if st := f.status(t); st.InFlight != len(paths) {
		t.Fatalf("while an upload is held: %+v, want %d in flight", st, len(paths))
	}
	p.signal(t, syscall.SIGKILL)
	if code := p.wait(t); code != -1 {
		t.Fatalf("watch after SIGKILL: exit %d", code)
	}
	gate.release()
	assertSound(t, f.srv.Open(t, f.bucket), "after watch was killed")
	if st := f.status(t); st.InFlight != len(paths) {
		t.Fatalf("after the kill: %+v, want %d in flight", st, len(paths))
	}
	code, stdout, stderr := runBin(t, creds(f.srv), f.args("", "--once")...)
	if code != 0 {
		t.Fatalf("watch --once after the kill: exit %d: %s%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`msg="requeued the entries a previous watch left in flight" entries=3\n`).MatchString(stderr) {
		t.Errorf("no requeue line:\n%s", stderr)
	}
	f.assertArrived(t, paths...)
	if st := f.status(t); st.Pending+st.InFlight+st.Failed != 0 || st.Pushed != int64(len(paths)) {
		t.Errorf("queue at the end: %+v", st)
	}
}

// TestWatchTerminatedMidBatch sends SIGTERM while a NAR upload of the
// batch is held: watch says it finishes the batch, and once the upload
// goes on, it does, marks the entries done and exits 0.
func TestWatchTerminatedMidBatch(t *testing.T) {
	t.Parallel()
	f, paths, gate, p := heldBatch(t, "watch-term", false, "app", "lib")
	p.signal(t, syscall.SIGTERM)
	p.waitFor(t, regexp.MustCompile(`msg="stopping: finishing the batch in flight" paths=2 grace=45s`), 1)
	gate.release()
	if code := p.wait(t); code != 0 {
		t.Fatalf("watch after SIGTERM: exit %d:\n%s", code, p.output())
	}
	if !watchBatchPushed.MatchString(p.output()) {
		t.Errorf("no batch line:\n%s", p.output())
	}
	f.assertArrived(t, paths...)
	if st := f.status(t); st.Pending+st.InFlight+st.Failed != 0 || st.Pushed != int64(len(paths)) {
		t.Errorf("queue at the end: %+v", st)
	}
}

// TestWatchTerminatedTwice sends a second SIGTERM while the batch in
// flight is held: watch stops at once, without waiting the grace, and the
// batch's entries are pending again, none lost and none pushed.
func TestWatchTerminatedTwice(t *testing.T) {
	t.Parallel()
	f, paths, _, p := heldBatch(t, "watch-term-twice", false, "app", "lib")
	p.signal(t, syscall.SIGTERM)
	p.waitFor(t, regexp.MustCompile(`msg="stopping: finishing the batch in flight"`), 1)
	p.signal(t, syscall.SIGTERM)
	// The gate still holds the upload: only the second signal can end
	// watch before the test's deadline (the grace is 45 s).
	if code := p.wait(t); code != 0 {
		t.Fatalf("watch after two SIGTERMs: exit %d:\n%s", code, p.output())
	}
	out := p.output()
	if !strings.Contains(out, `msg="stopping now: cancelling the batch in flight"`) || !strings.Contains(out, "its entries are pending again") {
		t.Errorf("no line saying the batch was cancelled and requeued:\n%s", out)
	}
	if st := f.status(t); st.Pending != len(paths) || st.InFlight+st.Failed != 0 || st.Pushed != 0 {
		t.Errorf("queue at the end: %+v, want the %d entries pending", st, len(paths))
	}
}
