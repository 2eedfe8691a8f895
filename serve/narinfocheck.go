package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// refJobs bounds the HEADs of one narinfo's references in flight.
const refJobs = 16

// putNarInfo stores a narinfo once it has passed every check (see
// receiver), under the lock l, checked just before: a refused one leaves
// nothing in the bucket. One the bucket has already is never replaced.
func (rc *receiver) putNarInfo(ctx context.Context, l *lock.Lock, key string, body io.Reader) error {
	data, err := readSmall(body, key, maxNarInfo)
	if err != nil {
		return err
	}
	dir, err := rc.storeDir(ctx)
	if err != nil {
		return err
	}
	ni, err := narinfo.ParseString(string(data), narinfo.WithStoreDir(dir))
	if err != nil {
		return refuse(http.StatusBadRequest, "%s does not parse: %v", key, err)
	}
	if h, _ := layout.NarInfoHash(key); storepath.HashPart(ni.StorePath) != h {
		return refuse(http.StatusBadRequest, "%s is the narinfo of %s, whose hash is not the key's", key, ni.StorePath)
	}
	if err := rc.checkSignature(ni); err != nil {
		return err
	}
	if err := rc.checkNAR(ctx, ni); err != nil {
		return err
	}
	if err := rc.checkReferences(ctx, ni); err != nil {
		return err
	}
	// A narinfo the cache has is kept, not replaced: a valid signature
	// covers neither URL nor FileHash, so a token holder could otherwise
	// point a published path at other bytes (Nix would refuse them: a
	// denial of service). Nix and push HEAD a narinfo before they write
	// it, so only a racing pusher of the same path gets here.
	if _, err := rc.b.Stat(ctx, key); err == nil {
		rc.log.Debug("narinfo of a path the cache has: kept", "key", key)
		return nil
	} else if !errors.Is(err, s3cache.ErrNotFound) {
		return err
	}
	if err := l.Check(ctx); err != nil {
		return err
	}
	if err := rc.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: layout.ContentType(key)}); err != nil {
		return err
	}
	rc.nars.forget(ni.URL)
	rc.log.Info("path pushed", "path", ni.StorePath, "nar", ni.URL, "narSize", ni.NarSize)
	return nil
}

// checkSignature refuses a narinfo without a valid signature by one of
// the trusted keys.
func (rc *receiver) checkSignature(ni *narinfo.NarInfo) error {
	fp, err := ni.Fingerprint()
	if err != nil {
		return refuse(http.StatusBadRequest, "%s: %v", ni.StorePath, err)
	}
	n, _ := rc.opts.TrustedKeys.CountValid([]byte(fp), ni.Sigs)
	if n == 0 {
		return refuse(http.StatusForbidden, "%s has no valid signature by a trusted key (%s)", ni.StorePath, strings.Join(rc.keyNames(), ", "))
	}
	return nil
}

func (rc *receiver) keyNames() []string {
	var names []string
	for name := range rc.opts.TrustedKeys {
		names = append(names, name)
	}
	return names
}

// checkNAR refuses a narinfo whose NAR is not in the bucket with the
// FileSize and FileHash it names. A NAR this server received is known by
// the hash it took on the way in, as long as the object's ETag says it
// was not replaced since; any other is read back and hashed.
func (rc *receiver) checkNAR(ctx context.Context, ni *narinfo.NarInfo) error {
	if _, _, ok := narName(ni.URL); !ok {
		return refuse(http.StatusBadRequest, "%s: its URL %q is not a NAR key (nar/<52 nix32 characters>.nar[.xz|…])", ni.StorePath, ni.URL)
	}
	if ni.FileHash == nil || ni.FileSize == 0 {
		return refuse(http.StatusBadRequest, "%s: no FileHash or FileSize: the server cannot check its NAR", ni.StorePath)
	}
	if ni.FileHash.Algo() != nixhash.SHA256 {
		return refuse(http.StatusBadRequest, "%s: FileHash is not SHA-256", ni.StorePath)
	}
	want := ni.FileHash.Digest()
	// Nix keys a NAR by its FileHash, nixbucket push by its NarHash: a
	// narinfo may name no other key.
	if h, _, _ := narName(ni.URL); h != nixbase32.EncodeToString(want) && h != nixbase32.EncodeToString(ni.NarHash.Digest()) {
		return refuse(http.StatusBadRequest, "%s: its URL %s names neither its FileHash nor its NarHash", ni.StorePath, ni.URL)
	}
	info, err := rc.b.Stat(ctx, ni.URL)
	if errors.Is(err, s3cache.ErrNotFound) {
		return refuse(http.StatusConflict, "%s: its NAR %s is not in the cache; push the NAR first", ni.StorePath, ni.URL)
	}
	if err != nil {
		return err
	}
	if uint64(info.Size) != ni.FileSize {
		return refuse(http.StatusUnprocessableEntity, "%s: its NAR %s is %d bytes, the narinfo says FileSize %d", ni.StorePath, ni.URL, info.Size, ni.FileSize)
	}
	if rec, ok := rc.nars.get(ni.URL); ok && rec.etag != "" && rec.etag == info.ETag && rec.size == info.Size {
		if !bytes.Equal(rec.sha256[:], want) {
			return refuse(http.StatusUnprocessableEntity, "%s: its NAR %s has SHA-256 %s, the narinfo says FileHash %s",
				ni.StorePath, ni.URL, nixbase32.EncodeToString(rec.sha256[:]), nixbase32.EncodeToString(want))
		}
		return nil
	}
	got, n, err := rc.hashObject(ctx, ni.URL)
	if err != nil {
		return err
	}
	if n != info.Size || !bytes.Equal(got, want) {
		return refuse(http.StatusUnprocessableEntity, "%s: its NAR %s has SHA-256 %s (%d bytes), the narinfo says FileHash %s",
			ni.StorePath, ni.URL, nixbase32.EncodeToString(got), n, nixbase32.EncodeToString(want))
	}
	return nil
}

// hashObject reads key back and returns its SHA-256 and length.
func (rc *receiver) hashObject(ctx context.Context, key string) ([]byte, int64, error) {
	body, err := rc.b.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s back: %w", key, err)
	}
	rc.log.Debug("NAR read back to check it", "key", key, "bytes", n)
	return h.Sum(nil), n, nil
}

// checkReferences refuses a narinfo one of whose references (other than
// itself) has no narinfo in the cache and is named by no upstream record.
// A reference missing from both is looked for again in the records of the
// bucket (listed anew: another writer may have added one) before the
// narinfo is refused.
func (rc *receiver) checkReferences(ctx context.Context, ni *narinfo.NarInfo) error {
	self := storepath.Base(ni.StorePath)
	var (
		mu      sync.Mutex
		missing []string
	)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(refJobs)
	for _, ref := range ni.References {
		if ref == self || rc.upstream.has(ref) {
			continue
		}
		eg.Go(func() error {
			key := layout.NarInfoKey(storepath.HashPart(ref))
			_, err := rc.b.Stat(ectx, key)
			if errors.Is(err, s3cache.ErrNotFound) {
				mu.Lock()
				missing = append(missing, ref)
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	if err := eg.Wait(); err != nil || len(missing) == 0 {
		return err
	}
	if err := rc.refreshUpstream(ctx); err != nil {
		return err
	}
	slices.Sort(missing)
	for _, ref := range missing {
		if !rc.upstream.has(ref) {
			return refuse(http.StatusConflict, "%s refers to %s, which the cache does not have (nor an upstream record names); push the references first", ni.StorePath, ref)
		}
	}
	return nil
}
