package s3cache_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3cachetest"
	"github.com/nixbucket/nixbucket/s3cache"
)

func newFileBucket(t *testing.T) (*s3cache.FileBucket, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cache")
	u, err := s3cache.ParseURL("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3cache.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open(%s): %v", u, err)
	}
	return b.(*s3cache.FileBucket), dir
}

func TestFileBucket(t *testing.T) {
	t.Parallel()
	s3cachetest.Run(t, func(t *testing.T) s3cache.Bucket { b, _ := newFileBucket(t); return b })
}

func TestFileBucketLayout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, dir := newFileBucket(t)
	if err := b.Put(ctx, "nar/x.nar.xz", strings.NewReader("nar"), 3, s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// The object is a plain file where Nix's file:// store keeps it,
	// readable by others, and no temporary file is left.
	fi, err := os.Stat(filepath.Join(dir, "nar", "x.nar.xz"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("stat of the object file: %v, %v; want mode 0644", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "nar"))
	if len(entries) != 1 {
		t.Errorf("nar/ holds %d entries, want only the object", len(entries))
	}
	// A stray temporary file (a Put killed mid-way) is not listed.
	if err := os.WriteFile(filepath.Join(dir, "nar", ".nixbucket-tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := b.List(ctx, "", func(o s3cache.ObjectInfo) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "nar/x.nar.xz" {
		t.Errorf("List = %q, want [nar/x.nar.xz]", keys)
	}
	info, err := b.Stat(ctx, "nar/x.nar.xz")
	if err != nil || info.ContentType != "application/x-nix-nar" {
		t.Errorf("Stat = %+v, %v; want content type application/x-nix-nar", info, err)
	}
}

func TestFileBucketRejectsEscapingKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, dir := newFileBucket(t)
	outside := filepath.Join(filepath.Dir(dir), "outside")
	for _, key := range []string{"", "/etc/passwd", "../outside", "nar/../../outside", "a//b", "./x", "nar/", ".nixbucket-tmp-x"} {
		err := b.Put(ctx, key, strings.NewReader("x"), 1, s3cache.PutOptions{})
		if !errors.Is(err, s3cache.ErrInvalidKey) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.Stat(ctx, key); !errors.Is(err, s3cache.ErrInvalidKey) {
			t.Errorf("Stat(%q) error = %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := os.Stat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file appeared outside the bucket directory: %v", err)
	}
}
