package serve

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// Size limits of the small objects a pusher writes.
const (
	maxCacheInfo = 4 << 10
	maxNarInfo   = 1 << 20
	maxListing   = 64 << 20
)

// readSmall reads a small request body whole, refusing one over max.
func readSmall(body io.Reader, key string, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "reading the body of %s: %v", logKey(key), err)
	}
	if int64(len(data)) > max {
		return nil, refuse(http.StatusRequestEntityTooLarge, "%s is larger than %d bytes", logKey(key), max)
	}
	return data, nil
}

// putNAR streams a NAR to the bucket, hashing it on the way, and
// remembers its hash and size for the narinfo that will name it. A key
// already in the bucket is not replaced (Nix HEADs a NAR before it
// uploads it; a NAR's key names its content): the body is read and
// dropped. An uncompressed NAR's key names its FileHash: bytes with
// another hash abandon the upload, and nothing is stored.
func (rc *receiver) putNAR(ctx context.Context, key string, body io.Reader, size int64) error {
	unlock := rc.keys.lock(key)
	defer unlock()
	if _, err := rc.b.Stat(ctx, key); err == nil {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return refuse(http.StatusBadRequest, "reading the body of %s: %v", logKey(key), err)
		}
		rc.log.Debug("NAR already in the cache: kept", "key", key)
		return nil
	} else if !errors.Is(err, s3cache.ErrNotFound) {
		return err
	}
	hr := &hashingReader{r: body, h: sha256.New()}
	if h, ext, _ := narName(key); ext == "" {
		hr.want = h
	}
	err := rc.b.Put(ctx, key, hr, size, s3cache.PutOptions{ContentType: layout.ContentType(key), ExpectedSize: max(size, 0)})
	switch {
	case hr.mismatch:
		return refuse(http.StatusUnprocessableEntity, "%s: %v; nothing stored", logKey(key), errNarMismatch)
	case hr.err != nil:
		return refuse(http.StatusBadRequest, "reading the body of %s: %v; nothing stored", logKey(key), hr.err)
	case errors.Is(err, s3cache.ErrSizeMismatch):
		return refuse(http.StatusBadRequest, "%s: the body is not Content-Length bytes; nothing stored", logKey(key))
	case err != nil:
		return err
	}
	info, err := rc.b.Stat(ctx, key)
	if err != nil {
		return err
	}
	var rec narRecord
	copy(rec.sha256[:], hr.h.Sum(nil))
	rec.size, rec.etag = hr.n, info.ETag
	rc.nars.add(key, rec)
	rc.log.Debug("NAR stored", "key", key, "bytes", hr.n)
	return nil
}

// putListing stores a NAR listing as it comes: Nix writes it before the
// NAR and the narinfo, and it is harmless without a narinfo. The listing
// of a path the cache has (its narinfo is there) is kept, not replaced.
func (rc *receiver) putListing(ctx context.Context, key string, body io.Reader, enc string) error {
	switch enc {
	case "", "identity", "br", "gzip", "xz", "zstd", "bzip2":
	default:
		return refuse(http.StatusUnsupportedMediaType, "%s: unknown Content-Encoding %q", logKey(key), enc)
	}
	if enc == "identity" {
		enc = ""
	}
	data, err := readSmall(body, key, maxListing)
	if err != nil {
		return err
	}
	h, _ := layout.ListingHash(key)
	if _, err := rc.b.Stat(ctx, layout.NarInfoKey(h)); err == nil {
		rc.log.Debug("listing of a path the cache has: kept", "key", key)
		return nil
	} else if !errors.Is(err, s3cache.ErrNotFound) {
		return err
	}
	return rc.b.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)),
		s3cache.PutOptions{ContentType: layout.ContentType(key), ContentEncoding: enc})
}

// putCacheInfo writes nix-cache-info when the bucket has none (Nix does
// when it opens an empty cache), and accepts one that says the StoreDir
// the bucket's already says, leaving that one as it is; another StoreDir
// is refused: it would make every narinfo of the cache unusable.
func (rc *receiver) putCacheInfo(ctx context.Context, body io.Reader) error {
	key := layout.CacheInfoKey
	data, err := readSmall(body, key, maxCacheInfo)
	if err != nil {
		return err
	}
	dir := narinfo.CacheInfoValue(string(data), "StoreDir")
	if dir == "" || !path.IsAbs(dir) || path.Clean(dir) != dir {
		return refuse(http.StatusBadRequest, "%s: no StoreDir, or not a clean absolute path", key)
	}
	have, err := s3cache.ReadSmall(ctx, rc.b, key, maxCacheInfo)
	switch {
	case err == nil:
		if cur := narinfo.CacheInfoValue(string(have), "StoreDir"); cur != "" && cur != dir {
			return refuse(http.StatusConflict, "the cache is for store %s, not %s: %s not replaced", cur, dir, key)
		}
		return nil
	case !errors.Is(err, s3cache.ErrNotFound):
		return err
	}
	if dir != storepath.DefaultDir() {
		rc.log.Info("new cache for another store dir", "storeDir", dir)
	}
	return rc.b.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)), s3cache.PutOptions{ContentType: layout.ContentType(key)})
}

// storeDir is the cache's store directory: its nix-cache-info's, else
// the default. One that was read is kept: pushes cannot change it.
func (rc *receiver) storeDir(ctx context.Context) (string, error) {
	rc.dirMu.Lock()
	defer rc.dirMu.Unlock()
	if rc.dir != "" {
		return rc.dir, nil
	}
	data, err := s3cache.ReadSmall(ctx, rc.b, layout.CacheInfoKey, maxCacheInfo)
	if errors.Is(err, s3cache.ErrNotFound) {
		return storepath.DefaultDir(), nil
	}
	if err != nil {
		return "", err // it names the key
	}
	rc.dir = narinfo.CacheInfoValue(string(data), "StoreDir")
	if rc.dir == "" {
		rc.dir = storepath.DefaultDir()
	}
	return rc.dir, nil
}
