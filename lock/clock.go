package lock

import (
	"context"
	"fmt"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// ServerClock is implemented by buckets whose objects are stamped by a
// server's clock rather than the local one (S3: s3cache.S3Bucket reads
// the Date header of a response).
type ServerClock interface {
	// ServerTime returns the server's current time.
	ServerTime(ctx context.Context) (time.Time, error)
}

// Clock tells the time of a bucket's server: one reading of the server's
// clock, advanced by the local clock's passing. Comparing it with objects'
// LastModified is right even when the local clock is off by hours: a gc
// machine whose clock is ahead does not take live locks or young objects
// for old ones. Buckets without a server clock (file://, memory) stamp
// objects with the local clock, and Clock is the local clock for them.
type Clock struct {
	base  time.Time        // the server's time at the reading
	at    time.Time        // the local time at the reading
	local func() time.Time // the local clock
}

// NewClock reads b's clock once. local is the local clock (nil means
// time.Now); only its passing matters, so a skewed one does no harm.
func NewClock(ctx context.Context, b s3cache.Bucket, local func() time.Time) (*Clock, error) {
	if local == nil {
		local = time.Now
	}
	sc, ok := b.(ServerClock)
	if !ok {
		now := local()
		return &Clock{base: now, at: now, local: local}, nil
	}
	t, err := sc.ServerTime(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the server's clock: %w", err)
	}
	return &Clock{base: t, at: local(), local: local}, nil
}

// Now is the server's time now (UTC). It errs early, never late: the
// server's Date header is truncated to the second.
func (c *Clock) Now() time.Time { return c.base.Add(c.local().Sub(c.at)).UTC() }
