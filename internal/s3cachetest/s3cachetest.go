// Package s3cachetest is the conformance suite every s3cache.Bucket
// implementation passes: put/get/stat/list/delete, not-found, empty
// objects, size mismatches, pagination past 1000 keys, batched deletes,
// streaming multipart puts, and puts that are cancelled or whose reader
// fails, which must leave nothing behind.
package s3cachetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/s3cache"
)

// ManyKeys is how many keys the pagination test writes: more than one
// page (1000) of an S3 listing and one DeleteObjects batch.
const ManyKeys = 1050

// Run runs the suite; newBucket returns an empty bucket for one subtest.
func Run(t *testing.T, newBucket func(t *testing.T) s3cache.Bucket) {
	t.Run("PutGetStat", func(t *testing.T) { testPutGetStat(t, newBucket(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newBucket(t)) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, newBucket(t)) })
	t.Run("SizeMismatch", func(t *testing.T) { testSizeMismatch(t, newBucket(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newBucket(t)) })
	t.Run("ManyKeys", func(t *testing.T) { testManyKeys(t, newBucket(t)) })
	t.Run("Multipart", func(t *testing.T) { testMultipart(t, newBucket(t)) })
	t.Run("CancelMidPut", func(t *testing.T) { testCancel(t, newBucket(t)) })
	t.Run("ReaderFails", func(t *testing.T) { testReaderFails(t, newBucket(t)) })
}

func put(t *testing.T, b s3cache.Bucket, key string, data []byte, opts s3cache.PutOptions) {
	t.Helper()
	if err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func get(t *testing.T, b s3cache.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return data
}

func testPutGetStat(t *testing.T, b s3cache.Bucket) {
	ctx := t.Context()
	const key = "0123456789abcdfghijklmnpqrsvwxyz.narinfo"
	data := []byte("StorePath: /nix/store/0123456789abcdfghijklmnpqrsvwxyz-x\n")
	put(t, b, key, data, s3cache.PutOptions{ContentType: "text/x-nix-narinfo"})
	if got := get(t, b, key); !bytes.Equal(got, data) {
		t.Errorf("Get = %q, want %q", got, data)
	}
	info, err := b.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.ContentType != "text/x-nix-narinfo" || info.LastModified.IsZero() {
		t.Errorf("Stat = %+v, want key %s, size %d, content type text/x-nix-narinfo, a modification time", info, key, len(data))
	}
	if sum := md5.Sum(data); info.ETag != "" && info.ETag != hex.EncodeToString(sum[:]) {
		t.Errorf("ETag = %s, want the MD5 %x of a single-part object", info.ETag, sum)
	}
	rc, ginfo, err := s3cache.GetWithInfo(ctx, b, key)
	if err != nil {
		t.Fatalf("GetWithInfo: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) || ginfo.Size != info.Size || ginfo.ContentType != info.ContentType {
		t.Errorf("GetWithInfo = %q, %+v, %v; want %q, %+v", got, ginfo, err, data, info)
	}

	// Overwriting replaces the content.
	data2 := []byte("replaced")
	put(t, b, key, data2, s3cache.PutOptions{ContentType: "text/x-nix-narinfo"})
	if got := get(t, b, key); !bytes.Equal(got, data2) {
		t.Errorf("Get after overwrite = %q, want %q", got, data2)
	}
}

func testNotFound(t *testing.T, b s3cache.Bucket) {
	ctx := t.Context()
	if _, err := b.Stat(ctx, "missing.narinfo"); !errors.Is(err, s3cache.ErrNotFound) {
		t.Errorf("Stat(missing) error = %v, want ErrNotFound", err)
	}
	if rc, err := b.Get(ctx, "nar/missing.nar.xz"); !errors.Is(err, s3cache.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Get(missing) error = %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "missing", "nar/missing"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
}

func testEmpty(t *testing.T, b s3cache.Bucket) {
	ctx := t.Context()
	for _, size := range []int64{0, -1} {
		key := fmt.Sprintf("empty%d", size)
		if err := b.Put(ctx, key, strings.NewReader(""), size, s3cache.PutOptions{}); err != nil {
			t.Fatalf("Put(%s, size %d): %v", key, size, err)
		}
		info, err := b.Stat(ctx, key)
		if err != nil || info.Size != 0 {
			t.Errorf("Stat(%s) = %+v, %v; want size 0", key, info, err)
		}
		if got := get(t, b, key); len(got) != 0 {
			t.Errorf("Get(%s) = %q, want empty", key, got)
		}
	}
}

func testSizeMismatch(t *testing.T, b s3cache.Bucket) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		data int
		size int64
	}{
		{"short", 5, 10},
		{"long", 15, 10},
		{"short multipart", 6 << 20, 7 << 20},
		{"long multipart", 7<<20 + 1, 7 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "mismatch-" + strings.ReplaceAll(tc.name, " ", "-")
			err := b.Put(ctx, key, bytes.NewReader(make([]byte, tc.data)), tc.size, s3cache.PutOptions{PartSize: 5 << 20})
			if !errors.Is(err, s3cache.ErrSizeMismatch) {
				t.Errorf("Put of %d bytes declared %d: error = %v, want ErrSizeMismatch", tc.data, tc.size, err)
			}
			assertAbsent(t, b, key)
		})
	}
}

func testList(t *testing.T, b s3cache.Bucket) {
	ctx := t.Context()
	keys := []string{"nar/b.nar.xz", "nar/a.nar.xz", "nar-x", "a.narinfo", "nix-cache-info", "nar/sub/c"}
	for i, k := range keys {
		put(t, b, k, bytes.Repeat([]byte{'x'}, i), s3cache.PutOptions{})
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"nar/", []string{"nar/a.nar.xz", "nar/b.nar.xz", "nar/sub/c"}},
		{"nar", []string{"nar-x", "nar/a.nar.xz", "nar/b.nar.xz", "nar/sub/c"}},
		{"", []string{"a.narinfo", "nar-x", "nar/a.nar.xz", "nar/b.nar.xz", "nar/sub/c", "nix-cache-info"}},
		{"nar/a", []string{"nar/a.nar.xz"}},
		{"zzz", nil},
		{"nope/", nil},
	} {
		var got []string
		err := b.List(ctx, tc.prefix, func(o s3cache.ObjectInfo) error {
			got = append(got, o.Key)
			if want := int64(slices.Index(keys, o.Key)); o.Size != want {
				t.Errorf("List: %s has size %d, want %d", o.Key, o.Size, want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	for _, tc := range []struct {
		prefix, after string
		want          []string
	}{
		{"", "nar/\x7f", []string{"nix-cache-info"}},
		{"", "nar-x", []string{"nar/a.nar.xz", "nar/b.nar.xz", "nar/sub/c", "nix-cache-info"}},
		{"nar/", "nar/a.nar.xz", []string{"nar/b.nar.xz", "nar/sub/c"}},
		{"", "", []string{"a.narinfo", "nar-x", "nar/a.nar.xz", "nar/b.nar.xz", "nar/sub/c", "nix-cache-info"}},
	} {
		var got []string
		err := s3cache.ListAfter(ctx, b, tc.prefix, tc.after, func(o s3cache.ObjectInfo) error {
			got = append(got, o.Key)
			return nil
		})
		if err != nil {
			t.Fatalf("ListAfter(%q, %q): %v", tc.prefix, tc.after, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListAfter(%q, %q) = %q, want %q", tc.prefix, tc.after, got, tc.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := b.List(ctx, "", func(s3cache.ObjectInfo) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("List with a failing callback: %d calls, error %v; want 1 call and the callback's error", n, err)
	}
}

func testManyKeys(t *testing.T, b s3cache.Bucket) {
	ctx := t.Context()
	var keys []string
	for i := range ManyKeys {
		keys = append(keys, fmt.Sprintf("many/%05d.narinfo", i))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, k := range keys {
		g.Go(func() error {
			return b.Put(gctx, k, strings.NewReader(k), int64(len(k)), s3cache.PutOptions{})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("putting %d keys: %v", ManyKeys, err)
	}
	put(t, b, "other", []byte("x"), s3cache.PutOptions{})
	var got []string
	if err := b.List(ctx, "many/", func(o s3cache.ObjectInfo) error { got = append(got, o.Key); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("List returned %d keys, want the %d put, in order", len(got), len(keys))
	}
	// Page by page, after a key: every page but the last says there is
	// more, none exceeds a full S3 page, and a failing callback stops.
	var pages []s3cache.Page
	got = nil
	err := s3cache.ListPages(ctx, b, "many/", keys[10], func(p s3cache.Page) error {
		pages = append(pages, p)
		for _, o := range p.Objects {
			got = append(got, o.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ListPages: %v", err)
	}
	if !slices.Equal(got, keys[11:]) {
		t.Fatalf("ListPages after %s returned %d keys, want the %d after it, in order", keys[10], len(got), len(keys)-11)
	}
	for i, p := range pages {
		if p.More != (i < len(pages)-1) || len(p.Objects) > s3cache.ListPageSize {
			t.Errorf("page %d of %d: %d objects, More %v", i+1, len(pages), len(p.Objects), p.More)
		}
	}
	stop := errors.New("stop")
	n := 0
	err = s3cache.ListPages(ctx, b, "", "", func(s3cache.Page) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ListPages with a failing callback: %d calls, error %v; want 1 call and the callback's error", n, err)
	}
	if err := b.Delete(ctx, append(keys, "many/never-existed")...); err != nil {
		t.Fatalf("Delete(%d keys): %v", len(keys)+1, err)
	}
	got = nil
	if err := b.List(ctx, "", func(o s3cache.ObjectInfo) error { got = append(got, o.Key); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(got, []string{"other"}) {
		t.Errorf("after Delete, List = %d keys (first %q), want only [other]", len(got), got[:min(len(got), 3)])
	}
}

// randomData returns n deterministic pseudo-random bytes.
func randomData(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// onlyReader hides every method but Read, so a Put cannot seek or learn
// the length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testMultipart(t *testing.T, b s3cache.Bucket) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		n    int
		size int64 // -1: stream
		opts s3cache.PutOptions
	}{
		{"stream 40MiB", 40<<20 + 12345, -1, s3cache.PutOptions{PartSize: 5 << 20, Concurrency: 3, ContentType: "application/x-nix-nar"}},
		{"known size 11MiB", 11 << 20, 11 << 20, s3cache.PutOptions{PartSize: 5 << 20, ContentType: "application/x-nix-nar"}},
		{"stream exactly two parts", 10 << 20, -1, s3cache.PutOptions{PartSize: 5 << 20, Concurrency: 1, ContentType: "application/x-nix-nar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomData(tc.n)
			key := "nar/" + strings.ReplaceAll(tc.name, " ", "-") + ".nar"
			if err := b.Put(ctx, key, onlyReader{bytes.NewReader(data)}, tc.size, tc.opts); err != nil {
				t.Fatalf("Put: %v", err)
			}
			info, err := b.Stat(ctx, key)
			if err != nil || info.Size != int64(tc.n) || info.ContentType != "application/x-nix-nar" {
				t.Errorf("Stat = %+v, %v; want size %d, type application/x-nix-nar", info, err, tc.n)
			}
			got := get(t, b, key)
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Errorf("Get returned %d bytes that differ from the %d put", len(got), len(data))
			}
			assertNoUploads(t, b, key)
		})
	}
}

// cancellingReader yields random bytes and cancels its context after
// cancelAt of them, then keeps yielding.
type cancellingReader struct {
	n, cancelAt int
	cancel      context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n >= c.cancelAt {
		c.cancel()
	}
	for i := range p {
		p[i] = byte(c.n + i)
	}
	c.n += len(p)
	return len(p), nil
}

func testCancel(t *testing.T, b s3cache.Bucket) {
	for _, at := range []int{1000, 12 << 20} {
		t.Run(fmt.Sprintf("after %d bytes", at), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			key := fmt.Sprintf("nar/cancelled-%d.nar", at)
			r := &cancellingReader{cancelAt: at, cancel: cancel}
			err := b.Put(ctx, key, r, -1, s3cache.PutOptions{PartSize: 5 << 20, Concurrency: 2})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Put with cancelled context: error = %v, want context.Canceled", err)
			}
			assertAbsent(t, b, key)
			assertNoUploads(t, b, key)
		})
	}
}

// failingReader yields n bytes and then fails.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

func testReaderFails(t *testing.T, b s3cache.Bucket) {
	for _, n := range []int{100, 11 << 20} {
		t.Run(fmt.Sprintf("after %d bytes", n), func(t *testing.T) {
			boom := errors.New("disk on fire")
			key := fmt.Sprintf("nar/failed-%d.nar", n)
			err := b.Put(t.Context(), key, &failingReader{n: n, err: boom}, -1, s3cache.PutOptions{PartSize: 5 << 20})
			if !errors.Is(err, boom) {
				t.Errorf("Put from a failing reader: error = %v, want the reader's error", err)
			}
			assertAbsent(t, b, key)
			assertNoUploads(t, b, key)
		})
	}
}

func assertAbsent(t *testing.T, b s3cache.Bucket, key string) {
	t.Helper()
	if info, err := b.Stat(context.Background(), key); !errors.Is(err, s3cache.ErrNotFound) {
		t.Errorf("after the failed Put, Stat(%s) = %+v, %v; want ErrNotFound", key, info, err)
	}
	var got []string
	if err := b.List(context.Background(), key, func(o s3cache.ObjectInfo) error { got = append(got, o.Key); return nil }); err != nil || len(got) != 0 {
		t.Errorf("after the failed Put, List(%s) = %q, %v; want nothing", key, got, err)
	}
}

// assertNoUploads checks, on buckets with multipart uploads, that none is
// left unfinished under key.
func assertNoUploads(t *testing.T, b s3cache.Bucket, key string) {
	t.Helper()
	m, ok := b.(s3cache.Multiparter)
	if !ok {
		return
	}
	var got []s3cache.Upload
	if err := m.ListMultipartUploads(context.Background(), key, func(u s3cache.Upload) error { got = append(got, u); return nil }); err != nil {
		t.Fatalf("ListMultipartUploads(%s): %v", key, err)
	}
	if len(got) != 0 {
		t.Errorf("unfinished multipart uploads left under %s: %+v", key, got)
	}
}
