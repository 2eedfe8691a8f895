package queue_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestNextDue follows the earliest pending entry: none, one due at once,
// one due only after its retry delay, none again once it is done.
func TestNextDue(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "q.db"))
	if _, ok, err := q.NextDue(ctx); err != nil || ok {
		t.Fatalf("empty queue: ok %v, err %v; want nothing pending", ok, err)
	}
	if err := q.Add(ctx, "", []string{"/nix/store/00000000000000000000000000000000-a"}); err != nil {
		t.Fatal(err)
	}
	due, ok, err := q.NextDue(ctx)
	if err != nil || !ok || due.After(time.Now()) {
		t.Fatalf("new entry: due %v ok %v err %v; want due now", due, ok, err)
	}
	es, err := q.Claim(ctx, 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("claim: %v %v", es, err)
	}
	if _, ok, _ := q.NextDue(ctx); ok {
		t.Fatal("an in-flight entry counts as pending")
	}
	if err := q.Retry(ctx, ids(es), errors.New("boom"), time.Hour); err != nil {
		t.Fatal(err)
	}
	due, ok, err = q.NextDue(ctx)
	if err != nil || !ok || !due.After(time.Now().Add(50*time.Minute)) {
		t.Fatalf("retried entry: due %v ok %v err %v; want due in an hour", due, ok, err)
	}
}
