package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nix-community/go-nix/pkg/nixhash"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

// vouched reads the root manifests (keys) and returns, by narinfo key,
// what their entries record of the narinfos they vouch for: those of etags
// whose listed ETag is the entry's NarInfoMD5, so that the
// entry's NAR key, FileSize, NarSize and References are the narinfo's
// (the MD5 of its very text, recorded by the push that wrote or read it).
// With trusted keys, an entry vouches only if it records signatures (a
// manifest of an older nixbucket does not), and its NarHash is kept for
// the fingerprint. A manifest that does not parse, is of another store
// directory or is gone since the listing vouches for nothing.
//
// Manifests are read 4×Jobs at a time and at most manifestBudget bytes
// of them at once (a manifest of a million paths is hundreds of MB
// parsed); each is dropped once its entries are taken.
func (c *checker) vouched(ctx context.Context, keys []string, sizes map[string]int64, etags map[string]string) (map[string]*narinfo.NarInfo, error) {
	sigs := len(c.opts.TrustedKeys) > 0
	var mu sync.Mutex
	out := map[string]*narinfo.NarInfo{}
	budget := semaphore.NewWeighted(manifestBudget)
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(4 * c.opts.Jobs)
	for _, key := range keys {
		weight := min(max(sizes[key], 1), manifestBudget)
		if err := budget.Acquire(gctx, weight); err != nil {
			break // the group's error, or ctx's
		}
		eg.Go(func() error {
			defer budget.Release(weight)
			m, err := roots.Read(gctx, c.b, key)
			switch {
			case errors.Is(err, s3cache.ErrNotFound), errors.Is(err, roots.ErrInvalidManifest):
				c.log.Debug("manifest vouches for nothing", "key", key, "err", err)
				return nil
			case err != nil:
				return err
			case m.StoreDir != c.storeDir:
				c.log.Debug("manifest of another store directory vouches for nothing", "key", key, "storeDir", m.StoreDir)
				return nil
			}
			c.addUpstream(m.UpstreamHashes())
			mu.Lock()
			defer mu.Unlock()
			for _, e := range m.Paths {
				if out[e.NarInfo] != nil || e.NAR == "" || e.NarInfoMD5 == "" ||
					!strings.EqualFold(etags[e.NarInfo], e.NarInfoMD5) || (sigs && len(e.Sigs) == 0) {
					continue
				}
				ni := &narinfo.NarInfo{StorePath: e.Path, URL: e.NAR, FileSize: e.FileSize, NarSize: e.NarSize, References: e.References}
				if sigs {
					h, err := nixhash.ParseAny(e.NarHash, nil)
					if err != nil {
						continue
					}
					if ni.NarHash, err = nixhash.NewHash(h.Algo(), h.Digest()); err != nil {
						continue
					}
					ni.Sigs = e.Sigs
				}
				out[e.NarInfo] = ni
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, fmt.Errorf("reading root manifests: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading root manifests: %w", err)
	}
	return out, nil
}

// manifestBudget bounds the bytes of manifest text read at once.
const manifestBudget = 64 << 20
