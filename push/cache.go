package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/store"
)

// CacheInfoKey is the key of the cache's nix-cache-info file.
const CacheInfoKey = "nix-cache-info"

// EnsureCacheInfo writes nix-cache-info when it is missing (StoreDir,
// WantMassQuery: 1, Priority), and checks an existing one's StoreDir, as
// Nix does when it opens a binary cache.
func EnsureCacheInfo(ctx context.Context, b s3cache.Bucket, storeDir string, priority int) error {
	body, err := s3cache.ReadSmall(ctx, b, CacheInfoKey, 1<<16)
	if errors.Is(err, s3cache.ErrNotFound) {
		text := fmt.Sprintf("StoreDir: %s\nWantMassQuery: 1\nPriority: %d\n", storeDir, priority)
		if err := b.Put(ctx, CacheInfoKey, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{ContentType: "text/x-nix-cache-info"}); err != nil {
			return fmt.Errorf("writing %s: %w", CacheInfoKey, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", CacheInfoKey, err)
	}
	if dir := narinfo.CacheInfoValue(string(body), "StoreDir"); dir != "" && storeDir != "" && dir != storeDir {
		return fmt.Errorf("the cache is for store %s, these paths are in %s", dir, storeDir)
	}
	return nil
}

var narinfoKey = regexp.MustCompile(`^[0-9a-df-np-sv-z]{32}\.narinfo$`)

// findPresent returns the hash parts of the paths whose narinfo the cache
// has. Few paths: one HEAD each, in parallel. Many: one paginated LIST of the
// bucket (1000 keys a request), abandoned for HEADs if the listing grows
// past what the HEADs would cost. Never a local cache that a deletion would
// make stale.
func findPresent(ctx context.Context, b s3cache.Bucket, paths []string, jobs int, log *slog.Logger, pre *Listing) (map[string]bool, error) {
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[store.HashPart(p)] = true
	}
	if have, ok := pre.result(ctx); ok {
		present := make(map[string]bool)
		for h := range want {
			if have[h] {
				present[h] = true
			}
		}
		log.Debug("used the listing made while the closure was computed", "paths", len(paths), "present", len(present))
		return present, nil
	}
	present, err := listPresent(ctx, b, want, max(1, len(paths)/2)*listPage)
	if err == nil {
		log.Debug("listed cache", "paths", len(paths), "present", len(present))
		return present, nil
	}
	if !errors.Is(err, errListTooLong) {
		return nil, err
	}
	log.Debug("cache listing longer than HEADs would cost; using HEADs", "paths", len(paths))
	return headPresent(ctx, b, paths, jobs)
}

// Listing is a listing of the cache's narinfos started early, so that it
// overlaps the closure computation (StartListing).
type Listing struct {
	done     chan struct{}
	have     map[string]bool
	complete bool
}

// prefetchPages bounds an early listing: a larger bucket is left to the
// LIST-or-HEAD choice made once the number of paths is known.
const prefetchPages = 20

// StartListing lists the bucket's narinfos in the background, up to
// prefetchPages pages. Push uses the result when the listing completed;
// otherwise it checks presence as if there were none.
func StartListing(ctx context.Context, b s3cache.Bucket) *Listing {
	l := &Listing{done: make(chan struct{}), have: make(map[string]bool)}
	go func() {
		defer close(l.done)
		n := 0
		err := listNarinfos(ctx, b, func(o s3cache.ObjectInfo) error {
			if n++; n > prefetchPages*listPage {
				return errListTooLong
			}
			l.have[o.Key[:32]] = true
			return nil
		})
		l.complete = err == nil
	}()
	return l
}

// result waits for the listing and returns the set of hash parts with a
// narinfo, and whether the listing is complete and usable.
func (l *Listing) result(ctx context.Context) (map[string]bool, bool) {
	if l == nil {
		return nil, false
	}
	select {
	case <-l.done:
		return l.have, l.complete
	case <-ctx.Done():
		return nil, false
	}
}

// listPage is the number of keys one LIST request returns.
const listPage = 1000

var errListTooLong = errors.New("listing too long")

// listPresent lists the bucket and collects the wanted narinfos, giving up
// with errListTooLong after maxKeys keys.
func listPresent(ctx context.Context, b s3cache.Bucket, want map[string]bool, maxKeys int) (map[string]bool, error) {
	present := make(map[string]bool)
	n := 0
	err := listNarinfos(ctx, b, func(o s3cache.ObjectInfo) error {
		if n++; n > maxKeys {
			return errListTooLong
		}
		if h := o.Key[:32]; want[h] {
			present[h] = true
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errListTooLong) {
			return nil, err
		}
		return nil, fmt.Errorf("listing the cache: %w", err)
	}
	return present, nil
}

// errPastNARs stops the first half of a narinfo listing at nar/.
var errPastNARs = errors.New("reached nar/")

// listNarinfos calls fn for every narinfo object of the bucket. Narinfos
// lie at the top level; the NARs, about as many, all sort under nar/. A
// bucket that can start a listing after a key (S3's StartAfter) lists the
// keys before nar/ and then those after it, so the NARs cost no requests.
func listNarinfos(ctx context.Context, b s3cache.Bucket, fn func(s3cache.ObjectInfo) error) error {
	each := func(o s3cache.ObjectInfo) error {
		if narinfoKey.MatchString(o.Key) {
			return fn(o)
		}
		return nil
	}
	if _, ok := b.(s3cache.RangeLister); !ok {
		return b.List(ctx, "", each)
	}
	err := b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		if strings.HasPrefix(o.Key, "nar/") {
			return errPastNARs
		}
		return each(o)
	})
	if !errors.Is(err, errPastNARs) {
		return err
	}
	// "\x7f" sorts after every character of a NAR key.
	return s3cache.ListAfter(ctx, b, "", "nar/\x7f", each)
}

// headPresent checks each path's narinfo with one HEAD, jobs at a time.
func headPresent(ctx context.Context, b s3cache.Bucket, paths []string, jobs int) (map[string]bool, error) {
	var mu sync.Mutex
	present := make(map[string]bool)
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	for _, p := range paths {
		eg.Go(func() error {
			_, err := b.Stat(ctx, NarInfoKey(p))
			switch {
			case err == nil:
				mu.Lock()
				present[store.HashPart(p)] = true
				mu.Unlock()
			case !errors.Is(err, s3cache.ErrNotFound):
				return fmt.Errorf("checking %s: %w", NarInfoKey(p), err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return present, nil
}
