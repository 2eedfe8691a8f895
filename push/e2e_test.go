package push_test

import (
	"context"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
)

// countingBucket counts the requests made through it.
type countingBucket struct {
	s3cache.Bucket
	stats, gets, puts, lists, deletes atomic.Int64
}

func (c *countingBucket) Stat(ctx context.Context, key string) (s3cache.ObjectInfo, error) {
	c.stats.Add(1)
	return c.Bucket.Stat(ctx, key)
}

func (c *countingBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Bucket.Get(ctx, key)
}

func (c *countingBucket) Put(ctx context.Context, key string, r io.Reader, size int64, o s3cache.PutOptions) error {
	c.puts.Add(1)
	return c.Bucket.Put(ctx, key, r, size, o)
}

func (c *countingBucket) List(ctx context.Context, prefix string, fn func(s3cache.ObjectInfo) error) error {
	c.lists.Add(1)
	return c.Bucket.List(ctx, prefix, fn)
}

func (c *countingBucket) Delete(ctx context.Context, keys ...string) error {
	c.deletes.Add(1)
	return c.Bucket.Delete(ctx, keys...)
}

// sampleClosures builds the sample and returns two graphs: the full one (a
// 2000-path DAG, a multi-output derivation, 12 MiB of random data, and a
// .drv with --include-outputs) and a small mixed one.
func sampleClosures(t *testing.T) (full, small *closure.Graph) {
	t.Helper()
	f := nixtest.Sample(t, 2000, "push")
	outs := nixtest.Build(t, f, "all", "app", "blob", "multi.dev")
	drvs := nixtest.Instantiate(t, f, "app")
	ctx := context.Background()
	s, err := store.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	full, err = closure.Compute(ctx, s, append(slices.Clone(outs), drvs...), closure.Options{IncludeOutputs: true})
	if err != nil {
		t.Fatal(err)
	}
	smallRoots := slices.DeleteFunc(slices.Clone(outs), func(p string) bool { return strings.HasSuffix(p, "-all") })
	small, err = closure.Compute(ctx, s, smallRoots, closure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if full.Len() < 2000 || small.Len() < 6 {
		t.Fatalf("closures of %d and %d paths are too small", full.Len(), small.Len())
	}
	return full, small
}

// TestPushSubstitute pushes to each real S3 server with each compression,
// then has real Nix substitute everything through serve with signatures
// required; a second push uploads nothing; Nix refuses the paths when it
// trusts another key.
func TestPushSubstitute(t *testing.T) {
	nixtest.Require(t)
	full, small := sampleClosures(t)
	key, err := signing.GenerateSecretKey("nixbucket-test-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := signing.GenerateSecretKey("nixbucket-test-1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			for _, algo := range []string{"xz", "zstd", "none"} {
				t.Run(algo, func(t *testing.T) {
					g := small
					if algo == "xz" {
						g = full
					}
					// Through a proxy that counts the HTTP requests.
					proxy := s3test.NewFaultProxy(t, srv.Endpoint)
					u, err := s3cache.ParseURL("s3://" + srv.NewBucket(t) + "?endpoint=" + proxy.URL + "&region=" + s3test.Region)
					if err != nil {
						t.Fatal(err)
					}
					sb, err := s3cache.OpenS3(ctx, u, srv.Options())
					if err != nil {
						t.Fatal(err)
					}
					b := &countingBucket{Bucket: sb}
					res, err := push.Push(ctx, b, g, push.Options{Compression: algo, Key: key})
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("pushed %d paths, %d NAR bytes as %d in %.1fs", res.Pushed, res.NarBytes, res.FileBytes, res.Seconds)
					if res.Pushed != g.Len() || res.Skipped != 0 || res.NarBytes != g.NarSize() {
						t.Fatalf("first push: %+v, want %d pushed of %d NAR bytes", res, g.Len(), g.NarSize())
					}
					if algo != "none" && res.FileBytes >= res.NarBytes {
						t.Errorf("%s: %d NAR bytes uploaded as %d", algo, res.NarBytes, res.FileBytes)
					}
					puts := b.puts.Load()
					if want := int64(2*g.Len() + 1); puts != want {
						t.Errorf("first push made %d PUTs, want %d (a NAR and a narinfo a path, and nix-cache-info)", puts, want)
					}

					before := proxy.Requests()
					res, err = push.Push(ctx, b, g, push.Options{Compression: algo, Key: key})
					if err != nil {
						t.Fatal(err)
					}
					if res.Pushed != 0 || res.Skipped != g.Len() {
						t.Fatalf("second push: %+v, want everything skipped", res)
					}
					if n := b.puts.Load() - puts; n != 0 {
						t.Errorf("second push made %d PUTs, want 0", n)
					}
					// One GET of nix-cache-info, then a LIST of the bucket's
					// 2n+1 keys, 1000 a request.
					if n, want := proxy.Requests()-before, 1+(2*g.Len()+1+999)/1000; n != want {
						t.Errorf("second push made %d HTTP requests, want %d", n, want)
					}

					web := httptest.NewServer(serve.Handler(b, nil))
					defer web.Close()
					paths := g.Paths()
					root, err := nixtest.Substitute(t, web.URL, key.PublicKey().String(), paths)
					if err != nil {
						t.Fatalf("nix could not substitute what was pushed: %v", err)
					}
					nixtest.AssertInStore(t, root, paths)

					app := ""
					for _, p := range paths {
						if strings.HasSuffix(p, "-multi") || strings.HasSuffix(p, "-app") {
							app = p
						}
					}
					_, err = nixtest.Substitute(t, web.URL, other.PublicKey().String(), []string{app})
					if err == nil || !strings.Contains(err.Error(), "signature") {
						t.Fatalf("nix substituted %s signed by another key with the same name: %v", app, err)
					}
				})
			}
		})
	}
}
