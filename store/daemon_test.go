package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestDaemonError makes the real daemon report an error (STDERR_ERROR): it
// must come back as a *DaemonError with Nix's message, without terminal
// escapes; the connection is dropped (the daemon ends it after an error in
// reading arguments) and the next call works on a new one.
func TestDaemonError(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	d, err := store.OpenDaemon(ctx, daemonSocket, storepath.DefaultDir(), store.WithConnections(1))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before := store.IdleConns(d)
	_, err = store.QueryPathInfoUnchecked(ctx, d, "/tmp/not-in-store")
	var de *store.DaemonError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v (%T), want a *DaemonError", err, err)
	}
	if !strings.Contains(de.Message, "'/tmp/not-in-store' is not in the Nix store") || strings.Contains(de.Message, "\x1b") {
		t.Errorf("Message = %q", de.Message)
	}
	if after := store.IdleConns(d); len(before) != 1 || len(after) != 0 {
		t.Errorf("idle connections: %d before the error, %d after; want 1, 0", len(before), len(after))
	}
	if _, err := d.QueryPathInfo(ctx, f.top); err != nil {
		t.Errorf("QueryPathInfo after a daemon error: %v", err)
	}
}

func TestDaemonClosed(t *testing.T) {
	f := getFixture(t)
	d, err := store.OpenDaemon(context.Background(), daemonSocket, storepath.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.QueryPathInfo(context.Background(), f.top); err == nil {
		t.Error("QueryPathInfo after Close succeeded")
	}
}
