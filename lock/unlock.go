package lock

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// removeRounds bounds the listings of RemoveStale.
const removeRounds = 8

// RemoveStale deletes the locks that are stale (all of them when all is
// true) and returns what it removed: those older than staleAfter by the
// server's clock, and those whose holder ran in this process space and is
// gone.
//
// A holder refreshing its lock while it is removed may have written the
// lock's next key (see Lock.refresh) before the old one was deleted, and
// keep the lock under it; so RemoveStale lists again after deleting, and
// removes what is new, until a listing finds nothing new to remove. The
// next key, if the holder keeps the lock, was written before the old one
// was deleted, so the next listing has it. It lists at least twice: a
// listing that is not one snapshot (a directory read, as versitygw's) may
// miss both the old key, deleted while it ran, and the next one, written
// while it ran; the next listing has the next key.
func RemoveStale(ctx context.Context, b s3cache.Bucket, staleAfter time.Duration, all bool) ([]Info, error) {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	var j *judge
	seen := map[string]bool{}
	var gone []Info
	for round := range removeRounds {
		locks, err := List(ctx, b)
		if err != nil {
			return gone, err
		}
		if j == nil && !all && len(locks) > 0 {
			clock, err := NewClock(ctx, b, nil)
			if err != nil {
				return gone, err
			}
			host, _ := os.Hostname()
			j = &judge{b: b, clock: clock, staleAfter: staleAfter, space: processSpace(), host: host, dead: map[string]bool{}}
		}
		var keys []string
		for _, l := range locks {
			if seen[l.Key] {
				continue
			}
			seen[l.Key] = true
			if all || j.stale(ctx, l) {
				gone = append(gone, l)
				keys = append(keys, l.Key)
			}
		}
		if len(keys) == 0 {
			if round == 0 {
				continue
			}
			return gone, nil
		}
		if err := b.Delete(ctx, keys...); err != nil {
			return gone, fmt.Errorf("removing locks: %w", err)
		}
	}
	return gone, nil
}
