package watch_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/queue"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/watch"
)

// faultyBucket is a bucket whose NAR uploads fail (the first fails of
// them; all when fails < 0), or, with hold, block until their context
// ends, after reporting on held.
type faultyBucket struct {
	s3cache.Bucket
	mu    sync.Mutex
	fails int
	hold  bool
	held  chan struct{}
	once  sync.Once
	// poison is a key whose every Put fails.
	poison string
}

var errInjected = errors.New("injected upload failure")

func (b *faultyBucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts s3cache.PutOptions) error {
	if key == b.poison {
		return errInjected
	}
	if strings.HasPrefix(key, layout.NarDir) {
		b.mu.Lock()
		fail, hold := b.fails != 0, b.hold
		if b.fails > 0 {
			b.fails--
		}
		b.mu.Unlock()
		if hold {
			b.once.Do(func() { close(b.held) })
			<-ctx.Done()
			return ctx.Err()
		}
		if fail {
			return errInjected
		}
	}
	return b.Bucket.Put(ctx, key, r, size, opts)
}

// fixture is a queue holding one real store path, and the local store.
type fixture struct {
	q    *queue.Queue
	path string
	logs *syncBuffer
}

func newFixture(t *testing.T, salt string) *fixture {
	t.Helper()
	path := nixtest.Build(t, nixtest.Sample(t, 3, salt), "lib")[0]
	ctx := context.Background()
	q, err := queue.Open(ctx, filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if err := q.Add(ctx, "", []string{path}); err != nil {
		t.Fatal(err)
	}
	return &fixture{q: q, path: path, logs: new(syncBuffer)}
}

func openStore(ctx context.Context) (store.Store, error) { return store.Open(ctx) }

func (f *fixture) options(b s3cache.Bucket) watch.Options {
	return watch.Options{
		Queue: f.q, Bucket: b, OpenStore: openStore, Once: true,
		RetryBase: time.Millisecond, RetryMax: 4 * time.Millisecond, MaxAttempts: 3,
		PollInterval: 10 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(f.logs, nil)),
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRetries pushes through NAR uploads that fail: a batch whose pushes
// fail fewer times than the attempts allowed is retried (a WARN line per
// retry) until pushed; one that always fails is given up after the
// attempts, its entry failed with the error, and counted in the summary.
func TestRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		fails            int
		done, failed     int
		retries, giveUps int
	}{
		{"recovers", 2, 1, 0, 2, 0},
		{"gives up", -1, 0, 1, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "watch-retries-"+tc.name)
			b := &faultyBucket{Bucket: s3cache.NewMemBucket(), fails: tc.fails}
			sum, err := watch.Run(context.Background(), f.options(b))
			if err != nil {
				t.Fatal(err)
			}
			logs := f.logs.String()
			if sum.Done != tc.done || sum.Failed != tc.failed {
				t.Errorf("summary %+v, want %d done, %d failed\n%s", sum, tc.done, tc.failed, logs)
			}
			if n := strings.Count(logs, `msg="batch failed; will retry"`); n != tc.retries {
				t.Errorf("%d retry lines, want %d:\n%s", n, tc.retries, logs)
			}
			if n := strings.Count(logs, `msg="batch failed; giving up`); n != tc.giveUps {
				t.Errorf("%d give-up lines, want %d:\n%s", n, tc.giveUps, logs)
			}
			st, err := f.q.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Failed != tc.failed || st.Pending+st.InFlight != 0 {
				t.Errorf("queue %+v", st)
			}
			if tc.failed > 0 {
				es, _ := f.q.Entries(context.Background(), queue.Failed, 0)
				if len(es) != 1 || es[0].Attempts != 3 || !strings.Contains(es[0].LastError, errInjected.Error()) {
					t.Errorf("failed entries %+v", es)
				}
				if !errors.Is(sum.LastError, errInjected) {
					t.Errorf("summary's last error %v", sum.LastError)
				}
				return
			}
			if _, err := b.Stat(context.Background(), layout.NarInfoKeyOf(f.path)); err != nil {
				t.Errorf("%s not pushed: %v", f.path, err)
			}
		})
	}
}

// TestStopCancelsAfterGrace stops a Run whose batch hangs in a NAR
// upload: after the grace, the batch is cancelled and its entry is
// pending again, not lost; Run returns no error.
func TestStopCancelsAfterGrace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "watch-stop")
	b := &faultyBucket{Bucket: s3cache.NewMemBucket(), hold: true, held: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := f.options(b)
	opts.Once = false
	opts.BatchWait = time.Millisecond
	opts.StopGrace = 10 * time.Millisecond
	type result struct {
		sum watch.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := watch.Run(ctx, opts)
		done <- result{sum, err}
	}()
	<-b.held
	st, err := f.q.Status(context.Background())
	if err != nil || st.InFlight != 1 {
		t.Fatalf("while the upload hangs: %+v %v; want 1 in flight", st, err)
	}
	cancel()
	r := <-done
	if r.err != nil || r.sum.Done != 0 || r.sum.Failed != 0 {
		t.Fatalf("Run: %+v, %v", r.sum, r.err)
	}
	es, err := f.q.Entries(context.Background(), queue.Pending, 0)
	if err != nil || len(es) != 1 || es[0].Path != f.path {
		t.Fatalf("pending after the stop: %+v %v; want %s", es, err, f.path)
	}
	if !strings.Contains(f.logs.String(), "cancelled the batch in flight; its entries are pending again") {
		t.Errorf("no line for the cancelled batch:\n%s", f.logs.String())
	}
}

// TestSecondDrainerRefused runs a second Run on a queue one drains.
func TestSecondDrainerRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "watch-second")
	unlock, err := f.q.LockDrainer()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = watch.Run(context.Background(), f.options(s3cache.NewMemBucket()))
	if !errors.Is(err, queue.ErrDrainerRunning) {
		t.Fatalf("second drainer: %v, want ErrDrainerRunning", err)
	}
}

// TestBadPathAlone queues a path whose narinfo can never be written
// before a good one: the failed batch is halved, so the good path is
// pushed on its own, and only the bad one is failed.
func TestBadPathAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "watch-poison")
	good := nixtest.Build(t, nixtest.Sample(t, 3, "watch-poison-good"), "dag")[0]
	if err := f.q.Add(context.Background(), "", []string{good}); err != nil {
		t.Fatal(err)
	}
	b := &faultyBucket{Bucket: s3cache.NewMemBucket(), poison: layout.NarInfoKeyOf(f.path)}
	sum, err := watch.Run(context.Background(), f.options(b))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 1 || sum.Failed != 1 {
		t.Errorf("summary %+v, want 1 done, 1 failed\n%s", sum, f.logs.String())
	}
	if _, err := b.Stat(context.Background(), layout.NarInfoKeyOf(good)); err != nil {
		t.Errorf("the good path was not pushed: %v\n%s", err, f.logs.String())
	}
	es, err := f.q.Entries(context.Background(), queue.Failed, 0)
	if err != nil || len(es) != 1 || es[0].Path != f.path {
		t.Errorf("failed entries %+v (%v), want only %s", es, err, f.path)
	}
}

// TestStoredErrorsRedacted checks that the errors the queue keeps (shown
// later by `nixbucket queue`, a process that does not know the watch's
// secrets) pass through Options.Redact first.
func TestStoredErrorsRedacted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "watch-redacted")
	o := f.options(&faultyBucket{Bucket: s3cache.NewMemBucket(), fails: -1})
	o.Redact = func(s string) string { return strings.ReplaceAll(s, "upload", "xxxxx") }
	if _, err := watch.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	es, err := f.q.Entries(context.Background(), queue.Failed, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || strings.Contains(es[0].LastError, "upload") || !strings.Contains(es[0].LastError, "injected xxxxx failure") {
		t.Fatalf("failed entries %+v: want the error stored redacted", es)
	}
}

// TestGonePaths queues two paths the local store does not have: the one
// the cache has (pushed another way, then garbage-collected locally) is
// done; the one it lacks is failed with an error that says why. The
// batch's real path is pushed all the same.
func TestGonePaths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "watch-gone")
	dir := filepath.Dir(f.path)
	inCache := dir + "/" + strings.Repeat("a", 32) + "-gone-but-cached"
	lost := dir + "/" + strings.Repeat("b", 32) + "-gone"
	if err := f.q.Add(ctx, "", []string{inCache, lost}); err != nil {
		t.Fatal(err)
	}
	b := s3cache.NewMemBucket()
	if err := b.Put(ctx, layout.NarInfoKeyOf(inCache), strings.NewReader("StorePath: "+inCache+"\n"), -1, s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	sum, err := watch.Run(ctx, f.options(b))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 2 || sum.Failed != 1 {
		t.Errorf("summary %+v, want 2 done (the real path, the cached one), 1 failed\n%s", sum, f.logs.String())
	}
	es, err := f.q.Entries(ctx, queue.Failed, 0)
	if err != nil || len(es) != 1 || es[0].Path != lost || !strings.Contains(es[0].LastError, "no longer valid in the local store") {
		t.Errorf("failed entries %+v (%v), want only %s, gone", es, err, lost)
	}
	if !errors.Is(sum.LastError, store.ErrNotValid) {
		t.Errorf("last error %v, want store.ErrNotValid", sum.LastError)
	}
	if _, err := b.Stat(ctx, layout.NarInfoKeyOf(f.path)); err != nil {
		t.Errorf("the real path was not pushed: %v", err)
	}
}
