package push_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// orderBucket logs the keys put, in the order the Puts returned, and
// fails the Put of fail.
type orderBucket struct {
	*s3cache.S3Bucket
	fail string
	mu   sync.Mutex
	puts []string
}

func (o *orderBucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts s3cache.PutOptions) error {
	if key == o.fail {
		return errors.New("injected failure")
	}
	err := o.S3Bucket.Put(ctx, key, r, size, opts)
	o.mu.Lock()
	o.puts = append(o.puts, key)
	o.mu.Unlock()
	return err
}

// TestUpstreamRecordFirst: a push without a root that leaves paths
// upstream writes its upstream record before the first narinfo that
// refers to one, so that a push stopped midway (here: the top narinfo's
// Put fails) leaves a cache verify finds whole, its references to the
// paths left upstream counted, not missing.
func TestUpstreamRecordFirst(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 4, "upstream-first")
	all := nixtest.Build(t, f, "all")[0]
	lib := nixtest.Build(t, f, "lib")[0]
	app := nixtest.Build(t, f, "app")[0]
	g := grapher(t)(all)
	g.Info(lib).Signatures = append(g.Info(lib).Signatures, "upstream-first-1:c2ln")
	key := newKey(t, "upstream-first-own-1")
	srv := s3test.Start(t, s3test.MinIO)
	b := &orderBucket{S3Bucket: srv.Open(t, srv.Bucket), fail: layout.NarInfoKeyOf(all)}
	ctx := context.Background()
	_, err := push.Push(ctx, b, g, push.Options{Compression: "zstd", Keys: []*signing.SecretKey{key},
		SkipSignedBy: []string{"upstream-first-1"},
		Lock:         &lock.Options{Command: "test push", Settle: 10 * time.Millisecond}})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("push: %v; want the injected failure", err)
	}
	rec := slices.IndexFunc(b.puts, func(k string) bool { return strings.HasPrefix(k, layout.UpstreamDir) })
	first := slices.Index(b.puts, layout.NarInfoKeyOf(app))
	if rec < 0 || first < 0 || rec > first || slices.Contains(b.puts, layout.NarInfoKeyOf(lib)) {
		t.Fatalf("puts %v: want the upstream record before %s, which refers to %s, and no narinfo of it", b.puts, layout.NarInfoKeyOf(app), lib)
	}
	r, err := verify.Check(ctx, b.S3Bucket, verify.Options{TrustedKeys: signing.NewPublicKeys(key.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.UpstreamReferences != 1 {
		t.Fatalf("verify of the stopped push: faults %v, %d references left to upstream; want none and 1", r.Faults, r.UpstreamReferences)
	}
}
