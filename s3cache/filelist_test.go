package s3cache_test

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// TestFileBucketListOrder lists keys whose directories sort differently
// from their keys ("nar" before "nar-x" by name, after it by key), whole,
// after a key and under a prefix.
func TestFileBucketListOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, _ := newFileBucket(t)
	keys := []string{"nar/a", "nar-x", "nar.y", "nar/b/c", "nar/b-d", "na", "nar0", "a/b", "a-b", "roots/x/y.json", "nar-z/q"}
	for _, k := range keys {
		if err := b.Put(ctx, k, strings.NewReader(k), int64(len(k)), s3cache.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(keys)
	for _, tc := range []struct{ prefix, after string }{
		{"", ""}, {"", "nar-x"}, {"", "nar/"}, {"", "nar/b"}, {"", "nar/b/c"}, {"nar", ""}, {"nar/", "nar/a"}, {"nar/b", ""}, {"zz", ""},
	} {
		var want, got []string
		for _, k := range keys {
			if strings.HasPrefix(k, tc.prefix) && k > tc.after {
				want = append(want, k)
			}
		}
		err := b.ListAfter(ctx, tc.prefix, tc.after, func(o s3cache.ObjectInfo) error { got = append(got, o.Key); return nil })
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ListAfter(%q, %q) = %q, %v; want %q", tc.prefix, tc.after, got, err, want)
		}
	}
}

// TestFileBucketETag: List reports the MD5 of a small object Put wrote,
// and none once another tool rewrites the file in place.
func TestFileBucketETag(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, dir := newFileBucket(t)
	text := "StorePath: /nix/store/x\n"
	if err := b.Put(ctx, "x.narinfo", strings.NewReader(text), int64(len(text)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	etag := func() string {
		var tag string
		if err := b.List(ctx, "x.", func(o s3cache.ObjectInfo) error { tag = o.ETag; return nil }); err != nil {
			t.Fatal(err)
		}
		return tag
	}
	sum := md5.Sum([]byte(text))
	if got, want := etag(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("ETag %q, want the MD5 %q", got, want)
	}
	p := filepath.Join(dir, "x.narinfo")
	f, err := os.OpenFile(p, os.O_WRONLY, 0) // in place: the attribute stays
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("T"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if got := etag(); got != "" {
		t.Errorf("ETag %q of a file rewritten in place, want none", got)
	}
}
