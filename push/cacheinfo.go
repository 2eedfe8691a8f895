package push

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
)

// CacheInfo is the content of nix-cache-info (layout.CacheInfoKey): what
// Nix reads when it opens a binary cache.
type CacheInfo struct {
	// StoreDir is the store directory of the cache's paths.
	StoreDir string
	// WantMassQuery tells Nix that querying many paths is cheap.
	WantMassQuery bool
	// Priority orders substituters; lower is preferred.
	Priority int
}

// String renders ci as nix-cache-info.
func (ci CacheInfo) String() string {
	mass := 0
	if ci.WantMassQuery {
		mass = 1
	}
	return fmt.Sprintf("StoreDir: %s\nWantMassQuery: %d\nPriority: %d\n", ci.StoreDir, mass, ci.Priority)
}

// ParseCacheInfo reads a nix-cache-info text as Nix does: unknown lines are
// ignored, and a missing or malformed field is left zero.
func ParseCacheInfo(text string) CacheInfo {
	ci := CacheInfo{
		StoreDir:      narinfo.CacheInfoValue(text, "StoreDir"),
		WantMassQuery: narinfo.CacheInfoValue(text, "WantMassQuery") == "1",
	}
	ci.Priority, _ = strconv.Atoi(narinfo.CacheInfoValue(text, "Priority"))
	return ci
}

// Ensure writes ci as nix-cache-info when the cache has none, and checks an
// existing one's StoreDir against ci's, as Nix does when it opens a binary
// cache. It returns the cache's nix-cache-info: ci when it was written,
// else the existing one, which it leaves as it is.
func (ci CacheInfo) Ensure(ctx context.Context, b s3cache.Bucket) (CacheInfo, error) {
	return ci.EnsureFrom(ctx, b, nil)
}

// EnsureFrom is Ensure with the cache's nix-cache-info from r, a read
// started earlier (ReadCacheInfo); nil reads it now.
func (ci CacheInfo) EnsureFrom(ctx context.Context, b s3cache.Bucket, r *CacheInfoRead) (CacheInfo, error) {
	if r == nil {
		r = ReadCacheInfo(ctx, b)
	}
	body, err := r.Wait(ctx)
	if errors.Is(err, s3cache.ErrNotFound) {
		return ci, ci.Write(ctx, b)
	}
	if err != nil {
		return CacheInfo{}, err // it names the key
	}
	have := ParseCacheInfo(string(body))
	if have.StoreDir != "" && ci.StoreDir != "" && have.StoreDir != ci.StoreDir {
		return have, fmt.Errorf("the cache is for store %s, these paths are in %s", have.StoreDir, ci.StoreDir)
	}
	return have, nil
}

// Write writes ci as nix-cache-info, replacing any.
func (ci CacheInfo) Write(ctx context.Context, b s3cache.Bucket) error {
	text := ci.String()
	key := layout.CacheInfoKey
	if err := b.Put(ctx, key, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{ContentType: layout.ContentType(key)}); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

// EnsureCacheInfo is CacheInfo.Ensure of a cache for storeDir with
// WantMassQuery: 1 and the given priority.
func EnsureCacheInfo(ctx context.Context, b s3cache.Bucket, storeDir string, priority int) error {
	_, err := CacheInfo{StoreDir: storeDir, WantMassQuery: true, Priority: priority}.Ensure(ctx, b)
	return err
}

// CacheInfoRead is a read of the cache's nix-cache-info started in the
// background (ReadCacheInfo), so that its round trip overlaps other work:
// it is also the first sign that the bucket answers.
type CacheInfoRead struct {
	done chan struct{}
	body []byte
	err  error // read after done
}

// ReadCacheInfo starts reading the cache's nix-cache-info
// (layout.CacheInfoKey); Wait returns it.
func ReadCacheInfo(ctx context.Context, b s3cache.Bucket) *CacheInfoRead {
	r := &CacheInfoRead{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.body, r.err = s3cache.ReadSmall(ctx, b, layout.CacheInfoKey, 1<<16)
	}()
	return r
}

// Wait waits for the read and returns the text of nix-cache-info, or an
// error wrapping s3cache.ErrNotFound if the cache has none.
func (r *CacheInfoRead) Wait(ctx context.Context) ([]byte, error) {
	select {
	case <-r.done:
		return r.body, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("getting %s: %w", layout.CacheInfoKey, ctx.Err())
	}
}
