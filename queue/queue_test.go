package queue_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/queue"
)

func open(t *testing.T, path string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func status(t *testing.T, q *queue.Queue) queue.Status {
	t.Helper()
	st, err := q.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ids(es []queue.Entry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "sub", "queue.db"))
	if err := q.Add(ctx, "/nix/store/d-x.drv", []string{"/nix/store/a-x", "/nix/store/b-x-dev"}); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(ctx, "", []string{"/nix/store/a-x", "/nix/store/c-y"}); err != nil {
		t.Fatal(err)
	}
	if st := status(t, q); st.Pending != 3 || st.InFlight != 0 || st.Failed != 0 || !st.LastSuccess.IsZero() {
		t.Fatalf("after adding: %+v", st)
	}
	batch, err := q.Claim(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != 2 || batch[0].Path != "/nix/store/a-x" || batch[0].Drv != "/nix/store/d-x.drv" || batch[1].Path != "/nix/store/b-x-dev" {
		t.Fatalf("claimed %+v", batch)
	}
	// A path in flight queued again keeps its one entry.
	if err := q.Add(ctx, "", []string{"/nix/store/a-x"}); err != nil {
		t.Fatal(err)
	}
	if st := status(t, q); st.Pending != 1 || st.InFlight != 2 {
		t.Fatalf("after claiming: %+v", st)
	}
	if err := q.Retry(ctx, ids(batch[:1]), errors.New("connection reset"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := q.Done(ctx, ids(batch[1:])); err != nil {
		t.Fatal(err)
	}
	// The retried entry is not due for an hour: only c-y is claimed.
	next, err := q.Claim(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 1 || next[0].Path != "/nix/store/c-y" {
		t.Fatalf("claimed %+v, want c-y alone", next)
	}
	if err := q.Fail(ctx, ids(next), errors.New("path is no longer valid")); err != nil {
		t.Fatal(err)
	}
	st := status(t, q)
	if st.Pending != 1 || st.InFlight != 0 || st.Failed != 1 || st.Pushed != 1 || st.LastSuccess.IsZero() || st.LastError != "path is no longer valid" {
		t.Fatalf("after settling: %+v", st)
	}
	failed, err := q.Entries(ctx, queue.Failed, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0].Attempts != 1 || failed[0].LastError != "path is no longer valid" {
		t.Fatalf("failed entries %+v", failed)
	}
	if n, err := q.RetryFailed(ctx); err != nil || n != 1 {
		t.Fatalf("RetryFailed = %d, %v", n, err)
	}
	// The retried entry's error is history: only the one still waiting
	// for its retry (in an hour) has one.
	if st := status(t, q); st.LastError != "connection reset" {
		t.Fatalf("last error after RetryFailed: %q, want the pending entry's", st.LastError)
	}
	// A failed path built again is pending again.
	if _, err := q.Claim(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Requeue(ctx); err != nil || n != 1 {
		t.Fatalf("Requeue = %d, %v; want the one in flight", n, err)
	}
	if st := status(t, q); st.Pending != 2 || st.InFlight != 0 || st.Failed != 0 {
		t.Fatalf("at the end: %+v", st)
	}
}

// Hooks of concurrent builds write to one queue from several processes
// (connections here) while the drainer claims: nothing is lost or doubled.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	drainer := open(t, path)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			q, err := queue.Open(ctx, path)
			if err != nil {
				errs <- err
				return
			}
			defer q.Close()
			for i := range each {
				if err := q.Add(ctx, "", []string{fmt.Sprintf("/nix/store/%d-%d", w, i)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	seen := map[string]bool{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		batch, err := drainer.Claim(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range batch {
			if seen[e.Path] {
				t.Fatalf("%s claimed twice", e.Path)
			}
			seen[e.Path] = true
		}
		if err := drainer.Done(ctx, ids(batch)); err != nil {
			t.Fatal(err)
		}
		// A drainer polls (watch every 0.5 s); one that took the write
		// lock again at once, for ever, would starve the writers: SQLite
		// gives no lock in turn.
		time.Sleep(2 * time.Millisecond)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	batch, err := drainer.Claim(ctx, writers*each)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range batch {
		seen[e.Path] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d paths seen, want %d", len(seen), writers*each)
	}
}

func TestOneDrainer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	a, b := open(t, path), open(t, path)
	unlock, err := a.LockDrainer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.LockDrainer(); !errors.Is(err, queue.ErrDrainerRunning) {
		t.Fatalf("second drainer: %v, want ErrDrainerRunning", err)
	}
	unlock()
	unlock2, err := b.LockDrainer()
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlock2()
}

func TestDefaultPath(t *testing.T) {
	t.Setenv(queue.EnvVar, "/tmp/q.db")
	if p, err := queue.DefaultPath(); err != nil || p != "/tmp/q.db" {
		t.Fatalf("with %s: %q, %v", queue.EnvVar, p, err)
	}
	t.Setenv(queue.EnvVar, "")
	t.Setenv("XDG_STATE_HOME", "/state")
	p, err := queue.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	want := "/state/nixbucket/queue.db"
	if queue.IsRoot() {
		want = queue.SystemPath
	}
	if p != want {
		t.Fatalf("DefaultPath = %q, want %q", p, want)
	}
}
