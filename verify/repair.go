package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/compression"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/nar"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// Store is the part of the local Nix store a repair reads: the path info
// of a valid path (an error wrapping store.ErrNotValid when it is not).
type Store interface {
	QueryPathInfo(ctx context.Context, path string) (*store.PathInfo, error)
}

// RepairOptions make Check repair what Deep finds wrong with NARs:
// missing, of the wrong size, with the wrong hashes, or not decompressing
// into a valid NAR. For each narinfo with such a fault, under the shared
// cache lock, the narinfo is read again (it must not have changed since
// the check), the path's NAR is uploaded from the local store by the push
// pipeline (push.UploadNAR) when the local path has the narinfo's NarHash
// and NarSize, and then the narinfo is rewritten with the new file fields
// (URL, Compression, FileHash, FileSize): NAR first, narinfo after, so no
// narinfo points to a missing NAR for longer than it did. The signatures
// are kept: they cover the store path, NarHash, NarSize and references,
// not the file fields. The damaged object, when the new NAR has another
// key, is left to gc.
type RepairOptions struct {
	// Store is the local store the NARs are read from; nil when there is
	// none, and NoStore says why: nothing is repaired then.
	Store Store
	// NoStore is why Store is nil.
	NoStore error
	// Push tunes the uploads as it tunes a push (Compression,
	// CompressionLevel, PartSize, Logger). A NAR is uploaded with its
	// narinfo's compression when nixbucket writes it (xz, zstd, none),
	// else with Push.Compression (default xz).
	Push push.Options
	// Lock, if set, is taken (shared, as a push takes it) before the first
	// narinfo is read again, and checked before each narinfo is written.
	Lock *lock.Options
}

// Repair is one narinfo whose NAR a repair re-uploaded (Report.Repaired)
// or could not (Report.Unrepaired).
type Repair struct {
	// Key is the narinfo's key.
	Key string `json:"key"`
	// StorePath is the narinfo's store path.
	StorePath string `json:"storePath"`
	// URL is the NAR's key: the new one when repaired, else the damaged one.
	URL string `json:"url"`
	// Reason says why the NAR could not be repaired; empty when it was.
	Reason string `json:"reason,omitempty"`
}

// String renders the repair as one line.
func (r Repair) String() string {
	if r.Reason == "" {
		return "repaired " + r.Key + ": " + r.StorePath + ": NAR uploaded again as " + r.URL
	}
	return "not repaired " + r.Key + ": " + r.StorePath + ": " + r.Reason
}

// narKinds are the fault kinds a repair fixes by uploading the NAR again.
var narKinds = []string{KindMissingNAR, KindNARSize, KindFileHash, KindNARHash, KindNARInvalid}

// Unresolved returns the faults that a repair did not fix: all of them
// when no repair was made.
func (r *Report) Unresolved() []Fault {
	fixed := make(map[string]bool, len(r.Repaired))
	for _, rp := range r.Repaired {
		fixed[rp.Key] = true
	}
	out := []Fault{}
	for _, f := range r.Faults {
		if !fixed[f.Key] || !slices.Contains(narKinds, f.Kind) {
			out = append(out, f)
		}
	}
	return out
}

// repairNARs repairs the NARs of the narinfos with a NAR fault (see
// RepairOptions).
func (c *checker) repairNARs(ctx context.Context, infos map[string]*narinfo.NarInfo) (err error) {
	var keys []string
	for _, f := range c.report.Faults {
		// Faults are sorted by key: a key's faults are together.
		if slices.Contains(narKinds, f.Kind) && infos[f.Key] != nil && (len(keys) == 0 || keys[len(keys)-1] != f.Key) {
			keys = append(keys, f.Key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	opts := c.opts.Repair
	if opts.Store == nil {
		why := "no access to a local store"
		if opts.NoStore != nil {
			why += ": " + opts.NoStore.Error()
		}
		for _, key := range keys {
			c.unrepaired(key, infos[key], "%s", why)
		}
		return nil
	}
	var l *lock.Lock
	if opts.Lock != nil {
		l, err = lock.Acquire(ctx, c.b, lock.Shared, *opts.Lock)
		if err != nil {
			return fmt.Errorf("taking the lock to repair: %w", err)
		}
		defer l.Release()
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(c.opts.Jobs)
	var large sync.Mutex // one large NAR uploads at a time, as in a push
	for _, key := range keys {
		eg.Go(func() error {
			if infos[key].NarSize > push.LargeNAR {
				large.Lock()
				defer large.Unlock()
			}
			return c.repairNAR(ctx, l, key, infos[key])
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	for _, list := range [][]Repair{c.report.Repaired, c.report.Unrepaired} {
		slices.SortFunc(list, func(a, b Repair) int { return strings.Compare(a.Key, b.Key) })
	}
	return nil
}

func (c *checker) unrepaired(key string, ni *narinfo.NarInfo, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report.Unrepaired = append(c.report.Unrepaired, Repair{Key: key, StorePath: ni.StorePath, URL: ni.URL, Reason: fmt.Sprintf(format, args...)})
}

// repairNAR uploads the NAR of the narinfo at key, checked as checked,
// from the local store and rewrites the narinfo. What keeps it from doing
// so is listed in the report; the error is for a bucket or lock failure.
func (c *checker) repairNAR(ctx context.Context, l *lock.Lock, key string, checked *narinfo.NarInfo) error {
	opts := c.opts.Repair
	body, err := s3cache.ReadSmall(ctx, c.b, key, 1<<24)
	if errors.Is(err, s3cache.ErrNotFound) {
		c.unrepaired(key, checked, "the narinfo was deleted since the check")
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	ni, err := narinfo.ParseString(string(body), narinfo.WithStoreDir(c.storeDir))
	if err != nil || ni.String() != checked.String() {
		c.unrepaired(key, checked, "the narinfo changed since the check; verify again")
		return nil
	}
	if layout.NarInfoKeyOf(ni.StorePath) != key {
		c.unrepaired(key, ni, "the narinfo's StorePath does not have its key's hash part")
		return nil
	}
	info, err := opts.Store.QueryPathInfo(ctx, ni.StorePath)
	switch {
	case errors.Is(err, store.ErrNotValid), errors.Is(err, storepath.ErrInvalid):
		c.unrepaired(key, ni, "not in the local store")
		return nil
	case err != nil:
		c.unrepaired(key, ni, "querying the local store: %v", err)
		return nil
	case !sameHash(ni.NarHash, info.NarHash) || ni.NarSize != info.NarSize:
		c.unrepaired(key, ni, "the local path is %s (%d bytes of NAR), the narinfo says %s (%d bytes)",
			formatHash(info.NarHash), info.NarSize, formatHash(ni.NarHash), ni.NarSize)
		return nil
	}
	po := opts.Push
	if compression.Check(ni.Compression) == nil && ni.Compression != cmp.Or(po.Compression, compression.XZ) {
		po.Compression, po.CompressionLevel = ni.Compression, 0
	}
	up, err := push.UploadNAR(ctx, c.b, info, po)
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, nar.ErrMismatch):
		c.unrepaired(key, ni, "the local copy no longer has the store's NarHash: %v", err)
		return nil
	case errors.As(err, &pathErr):
		c.unrepaired(key, ni, "reading the local copy: %v", err)
		return nil
	case err != nil:
		return err
	}
	if l != nil {
		if err := l.Check(ctx); err != nil {
			return fmt.Errorf("repair stopped before writing %s (its NAR %s is uploaded): %w", key, up.URL, err)
		}
	}
	fixed := *ni
	fixed.URL, fixed.Compression, fixed.FileHash, fixed.FileSize = up.URL, up.Compression, up.FileHash, up.FileSize
	if err := push.PutNarInfo(ctx, c.b, &fixed); err != nil {
		return err
	}
	c.log.Debug("repaired nar", "key", key, "path", ni.StorePath, "url", up.URL)
	c.mu.Lock()
	c.report.Repaired = append(c.report.Repaired, Repair{Key: key, StorePath: ni.StorePath, URL: up.URL})
	c.mu.Unlock()
	return nil
}
