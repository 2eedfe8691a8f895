package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// findPresent returns the hash parts of the paths whose narinfo the cache
// has, with whichever of two ways costs fewer requests: one HEAD a path
// (in parallel), or one paginated LIST of the bucket (1000 keys a
// request). The size of the bucket is not known in advance, so the
// listing goes on only while it has cost fewer requests than the HEADs
// would, and is abandoned for them after: never more than about twice
// the cheaper way. pre, if not nil, is a listing started earlier
// (StartListing); the same rule applies to what it has already cost.
// Never a local cache that a deletion would make stale.
func findPresent(ctx context.Context, b s3cache.Bucket, paths []string, jobs int, log *slog.Logger, pre *Listing) (map[string]bool, error) {
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[storepath.HashPart(p)] = true
	}
	l := pre
	if l == nil {
		l = startListing(ctx, b, len(paths)-1, true)
		defer l.Stop()
	}
	l.decide(len(paths))
	if have, ok := l.result(ctx); ok {
		present := make(map[string]bool)
		for h := range want {
			if have[h] {
				present[h] = true
			}
		}
		log.Debug("listed the cache", "paths", len(paths), "present", len(present), "requests", l.Requests(), "early", pre != nil)
		return present, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log.Debug("checking the paths with HEADs", "paths", len(paths), "listRequests", l.Requests(), "listing", l.err)
	return headPresent(ctx, b, paths, jobs)
}

// headPresent checks each path's narinfo with one HEAD, jobs at a time.
func headPresent(ctx context.Context, b s3cache.Bucket, paths []string, jobs int) (map[string]bool, error) {
	var mu sync.Mutex
	present := make(map[string]bool)
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	for _, p := range paths {
		eg.Go(func() error {
			_, err := b.Stat(ctx, layout.NarInfoKeyOf(p))
			switch {
			case err == nil:
				mu.Lock()
				present[storepath.HashPart(p)] = true
				mu.Unlock()
			case !errors.Is(err, s3cache.ErrNotFound):
				return fmt.Errorf("checking %s: %w", layout.NarInfoKeyOf(p), err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return present, nil
}
