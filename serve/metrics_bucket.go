package serve

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// timedBucket is a bucket whose operations are timed into serveMetrics.
// It offers the optional interfaces serve and the cache lock use
// (InfoGetter, RangeGetter, RangeLister, PageLister) through s3cache's
// helpers, which fall back as they would on the bucket itself, and
// lock.ServerClock only if the bucket has it (timedClockBucket), since
// without it the lock reads the local clock.
type timedBucket struct {
	b s3cache.Bucket
	m *serveMetrics
}

var (
	_ s3cache.InfoGetter  = (*timedBucket)(nil)
	_ s3cache.RangeGetter = (*timedBucket)(nil)
	_ s3cache.RangeLister = (*timedBucket)(nil)
	_ s3cache.PageLister  = (*timedBucket)(nil)
	_ lock.ServerClock    = timedClockBucket{}
)

// instrument returns b with its operations timed into m.
func (m *serveMetrics) instrument(b s3cache.Bucket) s3cache.Bucket {
	t := &timedBucket{b: b, m: m}
	if c, ok := b.(lock.ServerClock); ok {
		return timedClockBucket{t, c}
	}
	return t
}

// done records an operation that started at start and ended with *errp
// (deferred, with the named result).
func (t *timedBucket) done(op string, start time.Time, errp *error) {
	err := *errp
	t.m.backend.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, s3cache.ErrNotFound) && !errors.Is(err, s3cache.ErrInvalidKey) && !errors.Is(err, context.Canceled) {
		t.m.backendErr.WithLabelValues(op).Inc()
	}
}

func (t *timedBucket) Stat(ctx context.Context, key string) (_ s3cache.ObjectInfo, err error) {
	defer t.done(opHead, time.Now(), &err)
	return t.b.Stat(ctx, key)
}

func (t *timedBucket) Get(ctx context.Context, key string) (_ io.ReadCloser, err error) {
	defer t.done(opGet, time.Now(), &err)
	return t.b.Get(ctx, key)
}

func (t *timedBucket) GetWithInfo(ctx context.Context, key string) (_ io.ReadCloser, _ s3cache.ObjectInfo, err error) {
	defer t.done(opGet, time.Now(), &err)
	return s3cache.GetWithInfo(ctx, t.b, key)
}

func (t *timedBucket) GetRange(ctx context.Context, key string, off, n int64) (_ io.ReadCloser, _ s3cache.ObjectInfo, err error) {
	defer t.done(opGet, time.Now(), &err)
	return s3cache.GetRange(ctx, t.b, key, off, n)
}

func (t *timedBucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts s3cache.PutOptions) (err error) {
	defer t.done(opPut, time.Now(), &err)
	return t.b.Put(ctx, key, r, size, opts)
}

func (t *timedBucket) List(ctx context.Context, prefix string, fn func(s3cache.ObjectInfo) error) (err error) {
	defer t.done(opList, time.Now(), &err)
	return t.b.List(ctx, prefix, fn)
}

func (t *timedBucket) ListAfter(ctx context.Context, prefix, startAfter string, fn func(s3cache.ObjectInfo) error) (err error) {
	defer t.done(opList, time.Now(), &err)
	return s3cache.ListAfter(ctx, t.b, prefix, startAfter, fn)
}

func (t *timedBucket) ListPages(ctx context.Context, prefix, startAfter string, fn func(s3cache.Page) error) (err error) {
	defer t.done(opList, time.Now(), &err)
	return s3cache.ListPages(ctx, t.b, prefix, startAfter, fn)
}

func (t *timedBucket) Delete(ctx context.Context, keys ...string) (err error) {
	defer t.done(opDelete, time.Now(), &err)
	return t.b.Delete(ctx, keys...)
}

// timedClockBucket is a timedBucket of a bucket with a server clock.
type timedClockBucket struct {
	*timedBucket
	c lock.ServerClock
}

func (t timedClockBucket) ServerTime(ctx context.Context) (_ time.Time, err error) {
	defer t.done(opClock, time.Now(), &err)
	return t.c.ServerTime(ctx)
}
