package push_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/verify"
)

// hookBucket runs onNAR once, at the start of the first NAR upload
// through it.
type hookBucket struct {
	*s3cache.S3Bucket
	once  sync.Once
	onNAR func()
}

func (h *hookBucket) Put(ctx context.Context, key string, r io.Reader, size int64, o s3cache.PutOptions) error {
	if layout.IsNar(key) {
		h.once.Do(h.onNAR)
	}
	return h.S3Bucket.Put(ctx, key, r, size, o)
}

// putBucket closes put once a Put of key has returned.
type putBucket struct {
	*s3cache.S3Bucket
	key  string
	put  chan struct{}
	once sync.Once
}

func (p *putBucket) Put(ctx context.Context, key string, r io.Reader, size int64, o s3cache.PutOptions) error {
	err := p.S3Bucket.Put(ctx, key, r, size, o)
	if key == p.key && err == nil {
		p.once.Do(func() { close(p.put) })
	}
	return err
}

// signal is a slog.Handler that says when a record with message msg has
// been logged.
type signal struct {
	msg string
	mu  sync.Mutex
	ch  chan struct{}
}

func (s *signal) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ch = make(chan struct{})
}

func (s *signal) wait(d time.Duration) bool {
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func (s *signal) Enabled(context.Context, slog.Level) bool { return true }
func (s *signal) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *signal) WithGroup(string) slog.Handler            { return s }

func (s *signal) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Message == s.msg && s.ch != nil {
		select {
		case <-s.ch:
		default:
			close(s.ch)
		}
	}
	return nil
}

// TestPushLosesLock: a push whose shared lock is removed mid-push
// (`nixbucket unlock --all`) while a gc then deletes a path the push found
// present stops before writing any narinfo that would refer to it, says
// so, records no root, and leaves every visible narinfo with its closure.
func TestPushLosesLock(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 4, "lock-lost")
	outs := nixtest.Build(t, f, "app", "lib", "dag")
	app, lib, dag := outs[0], outs[1], outs[2]
	graph := grapher(t)
	key := newKey(t, "lock-lost-1")
	ctx := context.Background()
	srv := s3test.Start(t, s3test.MinIO)
	b := srv.Open(t, srv.Bucket)
	acquired := &signal{msg: "lock acquired"}
	lockOpts := &lock.Options{Command: "test push", Settle: 20 * time.Millisecond, Logger: slog.New(acquired)}
	pushRoot := func(bk s3cache.Bucket, p, root string) (*push.Result, error) {
		return push.Push(ctx, bk, graph(p), push.Options{Compression: "zstd", Keys: []*signing.SecretKey{key}, Lock: lockOpts,
			Root: &push.RootOptions{Name: root, TopLevel: []string{p}}})
	}
	if _, err := pushRoot(b, lib, "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := pushRoot(b, dag, "keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := roots.Remove(ctx, b, "old"); err != nil {
		t.Fatal(err)
	}
	// lib's closure is condemned "two hours from now", deletable at four.
	later := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
	gcOpts := gc.Options{Grace: time.Hour, Lock: &lock.Options{Command: "test gc", Settle: 20 * time.Millisecond}}
	gcOpts.Now = later(2 * time.Hour)
	if rep, err := gc.Run(ctx, b, gcOpts); err != nil || rep.Condemned == 0 {
		t.Fatalf("condemning lib: %+v, %v", rep, err)
	}
	libKey := layout.NarInfoKeyOf(lib)

	// Pushing app, which refers to lib: the push finds lib present and
	// skips it; during its first NAR upload, once its lock is held (taken
	// while the NARs upload), the lock is removed and a gc runs, deleting
	// lib.
	var gcRep *gc.Report
	var gcErr error
	acquired.reset()
	hb := &hookBucket{S3Bucket: b, onNAR: func() {
		if !acquired.wait(time.Minute) {
			t.Error("the push's lock was not acquired while its NARs uploaded")
		}
		if gone, err := lock.RemoveStale(ctx, b, 0, true); err != nil || len(gone) != 1 {
			t.Errorf("unlock --all: %v, %v; want the push's lock", gone, err)
		}
		gcOpts.Now = later(4 * time.Hour)
		gcRep, gcErr = gc.Run(ctx, b, gcOpts)
	}}
	res, err := pushRoot(hb, app, "app")
	if gcErr != nil {
		t.Fatalf("the gc beside the push: %v", gcErr)
	}
	if gcRep == nil || !deleted(gcRep, libKey) {
		t.Fatalf("the gc beside the push did not delete %s: %+v", libKey, gcRep)
	}
	if !errors.Is(err, lock.ErrLost) || !strings.Contains(err.Error(), "push stopped before") {
		t.Fatalf("push after losing its lock: %+v, %v; want an error wrapping ErrLost", res, err)
	}
	t.Logf("push: %v", err)
	if x, err := roots.List(ctx, b); err != nil || x.Get("app") != nil {
		t.Fatalf("a root was recorded by the push that lost its lock (%v)", err)
	}
	rep, err := verify.Check(ctx, b, verify.Options{TrustedKeys: signing.NewPublicKeys(key.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("the cache is broken after a push lost its lock: %v", rep.Faults)
	}
	if _, err := b.Stat(ctx, layout.NarInfoKeyOf(app)); !errors.Is(err, s3cache.ErrNotFound) {
		t.Fatalf("%s was written without its reference %s: %v", layout.NarInfoKeyOf(app), libKey, err)
	}
	// Run again, the push uploads lib again and completes.
	if _, err := pushRoot(b, app, "app"); err != nil {
		t.Fatal(err)
	}
	if rep, err := verify.Check(ctx, b, verify.Options{}); err != nil || !rep.OK() || rep.NarInfos != len(graph(app).Paths())+len(graph(dag).Paths()) {
		t.Fatalf("after the rerun: %+v, %v", rep, err)
	}
}

func deleted(rep *gc.Report, key string) bool {
	for _, a := range rep.Actions {
		if a.Op == gc.OpDelete && a.Key == key {
			return true
		}
	}
	return false
}

// TestPushWaitsForGC: a push that meets a running gc uploads its NARs
// while it waits for its lock, and since a gc ran meanwhile (it may have
// deleted what the push found present, or the NARs it had just uploaded),
// pushes again under the lock: every narinfo ends with its NAR and
// closure.
func TestPushWaitsForGC(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 4, "lock-wait")
	outs := nixtest.Build(t, f, "app", "lib")
	app, lib := outs[0], outs[1]
	graph := grapher(t)
	key := newKey(t, "lock-wait-1")
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	appNAR := push.NarKey(graph(app).Info(app), "zstd")
	libInfo := graph(lib).Info(lib)
	for _, tc := range []struct {
		name    string
		deleted []string // by the "gc" while the push waits
		pushed  int      // paths the push uploads in the end
	}{
		{"a reference deleted", []string{layout.NarInfoKeyOf(lib), push.NarKey(libInfo, "zstd")}, len(graph(app).Paths()) - len(graph(lib).Paths()) + 1},
		{"the push's own NAR deleted", []string{appNAR}, len(graph(app).Paths()) - len(graph(lib).Paths())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := srv.Open(t, srv.NewBucket(t))
			lockOpts := &lock.Options{Command: "test push", Settle: 20 * time.Millisecond, Wait: time.Minute}
			pushOpts := push.Options{Compression: "zstd", Keys: []*signing.SecretKey{key}, Lock: lockOpts}
			if _, err := push.Push(ctx, b, graph(lib), pushOpts); err != nil {
				t.Fatal(err)
			}
			gcLock, err := lock.Acquire(ctx, b, lock.Exclusive, lock.Options{Command: "test gc", Settle: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				res *push.Result
				err error
			}
			done := make(chan result, 1)
			uploaded := make(chan struct{})
			pb := &putBucket{S3Bucket: b, key: appNAR, put: uploaded}
			go func() {
				res, err := push.Push(ctx, pb, graph(app), pushOpts)
				done <- result{res, err}
			}()
			// app's NAR uploads while the "gc" holds the lock and deletes.
			select {
			case <-uploaded:
			case r := <-done:
				t.Fatalf("the push ended (%v) before uploading %s", r.err, appNAR)
			case <-time.After(time.Minute):
				t.Fatalf("%s was not uploaded while the push waited for its lock", appNAR)
			}
			if err := b.Delete(ctx, tc.deleted...); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Stat(ctx, layout.NarInfoKeyOf(app)); !errors.Is(err, s3cache.ErrNotFound) {
				t.Fatalf("%s was written while a gc held the lock (%v)", layout.NarInfoKeyOf(app), err)
			}
			if err := gcLock.Release(); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatalf("push beside the gc: %v", r.err)
			}
			if r.res.Pushed != tc.pushed {
				t.Errorf("push beside the gc pushed %d paths, want %d (%+v)", r.res.Pushed, tc.pushed, r.res)
			}
			rep, err := verify.Check(ctx, b, verify.Options{Deep: true, TrustedKeys: signing.NewPublicKeys(key.PublicKey())})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.NarInfos != len(graph(app).Paths()) {
				t.Fatalf("after a push beside a gc: %d narinfos of %d, faults %v", rep.NarInfos, len(graph(app).Paths()), rep.Faults)
			}
		})
	}
}

// grapher opens the local store for the test and returns a function that
// computes the closure graph of a path.
func grapher(t *testing.T) func(p string) *closure.Graph {
	t.Helper()
	st, err := store.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return func(p string) *closure.Graph {
		t.Helper()
		g, err := closure.Compute(context.Background(), st, []string{p}, closure.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
}

// wireOrder records, as the server receives them, the listings of the
// locks and the requests that write a NAR (PutObject and every request
// of a multipart upload).
type wireOrder struct {
	bucket string
	mu     sync.Mutex
	events []string
}

// match is a FaultProxy rule's Match that records and never faults.
func (o *wireOrder) match(r *http.Request) bool {
	key := strings.TrimPrefix(r.URL.Path, "/"+o.bucket+"/")
	e := ""
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Query().Get("prefix"), lock.Prefix):
		e = "list locks"
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && layout.IsNar(key):
		e = r.Method + " " + key
	}
	if e != "" {
		o.mu.Lock()
		o.events = append(o.events, e)
		o.mu.Unlock()
	}
	return false
}

// TestPushNARsAfterLockListing: a push uploads no NAR before its lock's
// first listing of the locks (a gc that listed the NAR for deletion before
// would be seen there), and a push that then has to wait for a gc looks
// again for the references outside it, ignoring the listing it made
// before: one deleted meanwhile fails the push, writing nothing.
func TestPushNARsAfterLockListing(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 4, "lock-order")
	outs := nixtest.Build(t, f, "app", "lib")
	app, lib := outs[0], outs[1]
	graph := grapher(t)
	key := newKey(t, "lock-order-1")
	ctx := context.Background()
	srv := s3test.Start(t, s3test.VersityGW)
	lockOpts := &lock.Options{Command: "test push", Settle: 20 * time.Millisecond, Wait: time.Minute}

	t.Run("NARs after the first listing", func(t *testing.T) {
		// NARs are compressed before, but not a byte of one may reach the
		// bucket: watch the wire.
		ob := &wireOrder{bucket: srv.NewBucket(t)}
		proxy := s3test.NewFaultProxy(t, srv.Endpoint, s3test.Rule{Match: ob.match, Times: 1 << 30})
		u, err := s3cache.ParseURL("s3://" + ob.bucket + "?endpoint=" + proxy.URL + "&region=" + s3test.Region)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s3cache.OpenS3(ctx, u, srv.Options())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := push.Push(ctx, b, graph(app), push.Options{Compression: "zstd", Keys: []*signing.SecretKey{key}, Lock: lockOpts}); err != nil {
			t.Fatal(err)
		}
		ob.mu.Lock()
		defer ob.mu.Unlock()
		if len(ob.events) < 2 || ob.events[0] != "list locks" {
			t.Fatalf("events %q: want the locks listed before the first NAR upload", ob.events)
		}
	})

	t.Run("outside references looked at again", func(t *testing.T) {
		b := srv.Open(t, srv.NewBucket(t))
		if _, err := push.Push(ctx, b, graph(lib), push.Options{Compression: "zstd", Keys: []*signing.SecretKey{key}}); err != nil {
			t.Fatal(err)
		}
		// app alone (as push --no-recursive): its references must be in the
		// cache; the listing made before the lock says they are.
		g := graph(app)
		var own []*store.PathInfo
		for _, p := range g.Paths() {
			if graph(lib).Info(p) == nil {
				own = append(own, g.Info(p))
			}
		}
		listing := push.StartListing(ctx, b)
		gcLock, err := lock.Acquire(ctx, b, lock.Exclusive, lock.Options{Command: "test gc", Settle: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		// At its first NAR upload, the push has found lib present (and
		// waits for its lock): the "gc" deletes lib then, and ends.
		hb := &hookBucket{S3Bucket: b, onNAR: func() {
			if err := b.Delete(ctx, layout.NarInfoKeyOf(lib)); err != nil {
				t.Error(err)
			}
			if err := gcLock.Release(); err != nil {
				t.Error(err)
			}
		}}
		_, err = push.Push(ctx, hb, closure.Partial(own), push.Options{Compression: "zstd", Keys: []*signing.SecretKey{key}, Lock: lockOpts, Listing: listing})
		if err == nil || !strings.Contains(err.Error(), lib) {
			t.Fatalf("push of app beside a gc that deleted lib: %v; want an error naming %s", err, lib)
		}
		if _, err := b.Stat(ctx, layout.NarInfoKeyOf(app)); !errors.Is(err, s3cache.ErrNotFound) {
			t.Fatalf("%s was written without its reference %s (%v)", layout.NarInfoKeyOf(app), lib, err)
		}
	})
}
