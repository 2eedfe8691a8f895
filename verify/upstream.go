package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// References left to upstream (push --skip-signed-by): a reference with
// no narinfo in the bucket is not a fault when the cache records its path
// as upstream, in an upstream record (upstream/…) or as an upstream entry
// of a root manifest. It is counted instead (Report.UpstreamReferences),
// and reported a KindMissingReference fault with RequireComplete. The
// records are read first (they are small); the manifests are read anyway
// when they vouch for narinfos, and otherwise only when a missing
// reference is left to explain.

// leftRef is one reference of a narinfo with no narinfo of its own.
type leftRef struct {
	key    string // the referring narinfo's key
	detail string // its missing-reference fault's detail
	ref    string // the reference's hash part
	path   string // the reference, as the narinfo names it
}

// addUpstream records hash parts as left upstream.
func (c *checker) addUpstream(hashes []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.upstream == nil {
		c.upstream = map[string]bool{}
	}
	for _, h := range hashes {
		c.upstream[h] = true
	}
}

// readUpstreamRecords reads the upstream records (keys). One that does
// not parse explains nothing: its references stay faults.
func (c *checker) readUpstreamRecords(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	set, err := roots.UpstreamHashes(ctx, c.b, keys, 4*c.opts.Jobs, func(key string, err error) error {
		c.log.Warn("upstream record ignored", "key", key, "err", err)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading upstream records: %w", err)
	}
	c.addUpstream(setKeys(set))
	return nil
}

// missingRef handles a reference of narinfo key with no narinfo in the
// bucket: counted if left upstream, else returned as a fault to report.
func (c *checker) missingRef(key, from, ref string) (Fault, bool) {
	detail := fmt.Sprintf("%s refers to %s, which has no narinfo in the bucket", from, ref)
	l := leftRef{key: key, detail: detail, ref: storepath.HashPart(ref), path: ref}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.upstream[l.ref] {
		c.leftUp[key+"\x00"+ref] = l
		return Fault{}, false
	}
	c.missingRefs[key+"\x00"+ref] = l
	return Fault{Key: key, Kind: KindMissingReference, Detail: detail}, true
}

// settleUpstream finishes the count of references left upstream: when
// missing references remain and the manifests were not read (read
// false), it reads their upstream entries and takes back the faults they
// explain; with RequireComplete, every reference left upstream becomes a
// fault.
func (c *checker) settleUpstream(ctx context.Context, manifests []string, read bool) error {
	if len(c.missingRefs) > 0 && !read && len(manifests) > 0 {
		if err := c.readManifestUpstream(ctx, manifests); err != nil {
			return err
		}
		drop := map[Fault]bool{}
		for id, l := range c.missingRefs {
			if c.upstream[l.ref] {
				c.leftUp[id] = l
				drop[Fault{Key: l.key, Kind: KindMissingReference, Detail: l.detail}] = true
			}
		}
		c.report.Faults = slices.DeleteFunc(c.report.Faults, func(f Fault) bool { return drop[f] })
	}
	refs := map[string]bool{}
	var left []leftRef
	for _, l := range c.leftUp {
		refs[l.ref] = true
		left = append(left, l)
	}
	c.report.UpstreamReferences = len(refs)
	if c.opts.RequireComplete {
		slices.SortFunc(left, func(a, b leftRef) int { return strings.Compare(a.key+a.path, b.key+b.path) })
		for _, l := range left {
			c.report.Faults = append(c.report.Faults, Fault{Key: l.key, Kind: KindMissingReference, Detail: l.detail + " (left to upstream)"})
		}
	}
	return nil
}

// readManifestUpstream reads the manifests for their upstream entries.
// One that cannot be read or parsed explains nothing.
func (c *checker) readManifestUpstream(ctx context.Context, keys []string) error {
	for _, key := range keys {
		m, err := roots.Read(ctx, c.b, key)
		switch {
		case errors.Is(err, s3cache.ErrNotFound), errors.Is(err, roots.ErrInvalidManifest):
			continue
		case err != nil:
			return err
		case m.StoreDir != c.storeDir:
			continue
		}
		c.addUpstream(m.UpstreamHashes())
	}
	return nil
}

func setKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
