package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/queue"
)

// TestQueueCommand drives `nixbucket queue` and `queue retry` over a queue
// the hook filled and a drainer (the queue package, as watch uses it)
// partly worked: one path pushed, one in flight, one failed, one pending.
func TestQueueCommand(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "queue.db")
	env := []string{queue.EnvVar + "=" + file}

	for _, args := range [][]string{{"queue"}, {"queue", "--json"}, {"queue", "retry"}} {
		code, _, stderr := runBin(t, env, args...)
		if code != exitNotFound || !strings.Contains(stderr, "no queue at "+file) {
			t.Errorf("%q on a missing queue: exit %d, stderr %q; want %d, no queue at …", args, code, stderr, exitNotFound)
		}
	}

	paths := []string{
		"/nix/store/00000000000000000000000000000001-a",
		"/nix/store/00000000000000000000000000000002-b",
		"/nix/store/00000000000000000000000000000003-c",
		"/nix/store/00000000000000000000000000000004-d",
	}
	if code, _, stderr := runBin(t, append(env, "DRV_PATH=/nix/store/00000000000000000000000000000000-x.drv", "OUT_PATHS="+strings.Join(paths, " ")), "hook"); code != 0 || stderr != "" {
		t.Fatalf("hook: exit %d: %s", code, stderr)
	}
	q, err := queue.Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	claimed, err := q.Claim(ctx, 3)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	if err := q.Done(ctx, []int64{claimed[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(ctx, []int64{claimed[1].ID}, errors.New("access denied")); err != nil {
		t.Fatal(err)
	}

	var r queueReport
	jsonStatus := func() {
		t.Helper()
		code, stdout, stderr := runBin(t, env, "queue", "--json")
		if code != 0 {
			t.Fatalf("queue --json: exit %d: %s", code, stderr)
		}
		r = queueReport{}
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("queue --json: %v: %s", err, stdout)
		}
		var raw map[string]any
		_ = json.Unmarshal([]byte(stdout), &raw)
		for _, k := range []string{"pending", "inFlight", "failed", "lastSuccess", "oldestPending", "lastError", "failedEntries"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("queue --json has no %q: %s", k, stdout)
			}
		}
	}
	jsonStatus()
	if r.Pending != 1 || r.InFlight != 1 || r.Failed != 1 || r.Pushed != 1 || r.LastSuccess == nil || r.OldestPending == nil ||
		r.LastError == nil || *r.LastError != "access denied" ||
		len(r.FailedList) != 1 || r.FailedList[0].Path != claimed[1].Path || r.FailedList[0].LastError != "access denied" ||
		len(r.InFlightList) != 1 || r.InFlightList[0].Path != claimed[2].Path {
		t.Errorf("queue --json: %+v", r)
	}
	if time.Since(*r.OldestPending) < 0 {
		t.Errorf("oldest pending %v is in the future", r.OldestPending)
	}

	code, stdout, stderr := runBin(t, env, "queue")
	if code != 0 {
		t.Fatalf("queue: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"pending    1", "in flight  1", "failed     1", claimed[1].Path + "  (1 attempt: access denied)", claimed[2].Path} {
		if !strings.Contains(stdout, want) {
			t.Errorf("queue's output has no %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runBin(t, env, "queue", "retry")
	if code != 0 || !strings.Contains(stdout, "re-queued 1 failed entry") {
		t.Errorf("queue retry: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	jsonStatus()
	if r.Pending != 2 || r.Failed != 0 || len(r.FailedList) != 0 {
		t.Errorf("after retry: %+v", r)
	}
	code, stdout, _ = runBin(t, env, "queue", "retry")
	if code != 0 || !strings.Contains(stdout, "re-queued 0 failed entries") {
		t.Errorf("queue retry again: exit %d, stdout %q", code, stdout)
	}
}

// TestQueueRetryFlagPlace checks that `queue retry` takes --queue on
// either side of "retry": given before it, to `queue`, it must not fall
// back to $NIXBUCKET_QUEUE (here a missing file) or the default path.
func TestQueueRetryFlagPlace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "queue.db")
	env := []string{queue.EnvVar + "=" + filepath.Join(dir, "elsewhere.db")}
	path := "/nix/store/00000000000000000000000000000001-a"
	if code, _, stderr := runBin(t, []string{queue.EnvVar + "=" + file, "DRV_PATH=/nix/store/00000000000000000000000000000000-x.drv", "OUT_PATHS=" + path}, "hook"); code != 0 || stderr != "" {
		t.Fatalf("hook: exit %d: %s", code, stderr)
	}
	q, err := queue.Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, args := range [][]string{
		{"queue", "retry", "--queue", file},
		{"queue", "--queue", file, "retry"},
	} {
		claimed, err := q.Claim(ctx, 1)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %v, %v", claimed, err)
		}
		if err := q.Fail(ctx, []int64{claimed[0].ID}, errors.New("access denied")); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runBin(t, env, args...)
		if code != 0 || !strings.Contains(stdout, "re-queued 1 failed entry in "+file) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want re-queued 1 failed entry in %s", args, code, stdout, stderr, file)
		}
		if st, err := q.Status(ctx); err != nil || st.Pending != 1 || st.Failed != 0 {
			t.Errorf("%q: status %+v, %v; want the entry pending again", args, st, err)
		}
	}
}
