package nar_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/nar"
)

// TestOpen reads a store path's NAR through Open and compares it with
// nix-store --dump.
func TestOpen(t *testing.T) {
	p := buildAll(t, map[string]string{"tree": treeScript})["tree"]
	r := nar.Open(context.Background(), p)
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if want := nixDump(t, p); !bytes.Equal(got, want) {
		t.Fatalf("Open(%s) differs from nix-store --dump: %s", p, firstDiff(got, want))
	}
}

// TestOpenError checks that Dump's error reaches the reader.
func TestOpenError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing")
	r := nar.Open(context.Background(), p)
	defer r.Close()
	if _, err := io.ReadAll(r); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reading Open(%s) = %v, want a not-exist error", p, err)
	}
}

// bigFile makes a sparse file of n bytes.
func bigFile(t *testing.T, n int64) string {
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitGoroutines waits until the number of goroutines is at most n, and
// fails if it stays above for long: a goroutine that has signalled its end
// may still be returning, so the count is polled, with a generous bound (a
// leak check, not a timing assertion).
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	for range 5000 {
		if runtime.NumGoroutine() <= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	buf = buf[:runtime.Stack(buf, true)]
	t.Fatalf("%d goroutines remain, want at most %d:\n%s", runtime.NumGoroutine(), n, buf)
}

// TestOpenCloseEarly closes the reader in the middle of a large NAR: Close
// returns (it waits for the dumping goroutine, so a leak would hang the
// test) and no goroutine remains.
func TestOpenCloseEarly(t *testing.T) {
	p := bigFile(t, 256<<20)
	before := runtime.NumGoroutine()
	for range 5 {
		r := nar.Open(context.Background(), p)
		buf := make([]byte, 4096)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(buf); err == nil {
			t.Fatal("Read after Close succeeded")
		}
	}
	waitGoroutines(t, before)
}

// TestOpenCancel cancels the context while nobody reads: the reader sees
// the context's error and the goroutine ends.
func TestOpenCancel(t *testing.T) {
	p := bigFile(t, 256<<20)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	r := nar.Open(ctx, p)
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading after cancel = %v, want context.Canceled", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, before)
}
