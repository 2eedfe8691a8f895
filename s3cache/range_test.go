package s3cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
)

// TestGetRange reads ranges of an object from every real S3 server, a
// file:// bucket and a memory bucket (which is no RangeGetter, so
// GetRange skips the bytes before the range): the bytes of the range, the
// whole object's size and the ETag Stat gives; a missing key is
// ErrNotFound.
func TestGetRange(t *testing.T) {
	t.Parallel()
	buckets := map[string]func(t *testing.T) s3cache.Bucket{
		"mem": func(*testing.T) s3cache.Bucket { return s3cache.NewMemBucket() },
		"file": func(t *testing.T) s3cache.Bucket {
			b, err := s3cache.NewFileBucket(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
	for _, kind := range s3test.Servers() {
		buckets[kind] = func(t *testing.T) s3cache.Bucket {
			srv := s3test.Start(t, kind)
			return srv.Open(t, srv.Bucket)
		}
	}
	data := make([]byte, 1<<20+7)
	rand.Read(data)
	for name, open := range buckets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := open(t)
			const key = "nar/x.nar"
			if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			stat, err := b.Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			n := int64(len(data))
			for _, r := range []struct{ off, n int64 }{{0, -1}, {1, -1}, {1000, 24}, {n - 1, -1}, {n - 1, 1}, {5, 0}, {0, n}, {n - 10, 100}} {
				rc, info, err := s3cache.GetRange(ctx, b, key, r.off, r.n)
				if err != nil {
					t.Fatalf("GetRange(%d, %d): %v", r.off, r.n, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				end := n
				if r.n >= 0 {
					end = min(n, r.off+r.n)
				}
				if err != nil || !bytes.Equal(got, data[r.off:end]) {
					t.Errorf("GetRange(%d, %d): %d bytes (%v), want bytes %d to %d", r.off, r.n, len(got), err, r.off, end)
				}
				if info.Size != n || info.ETag != stat.ETag || info.Key != key {
					t.Errorf("GetRange(%d, %d): info %+v, want size %d and ETag %q", r.off, r.n, info, n, stat.ETag)
				}
			}
			if _, _, err := s3cache.GetRange(ctx, b, "nar/missing.nar", 10, -1); !errors.Is(err, s3cache.ErrNotFound) {
				t.Errorf("GetRange of a missing key: %v, want ErrNotFound", err)
			}
		})
	}
}
