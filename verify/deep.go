package verify

import (
	"cmp"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/nix-community/go-nix/pkg/nixhash"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/compression"
	"github.com/nixbucket/nixbucket/nar"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
)

// narFile is one NAR object to download, with the narinfos that point to
// it with the same compression.
type narFile struct {
	url, algo string
	keys      []string // narinfo keys, in listing order
}

// narResult is what downloading one NAR object found.
type narResult struct {
	fileHash *nixhash.Hash
	fileSize uint64
	narHash  *nixhash.Hash
	narSize  uint64
	// problem is why the object did not decompress into a valid NAR;
	// narHash and narSize are meaningless then.
	problem error
}

// checkNARs downloads each NAR that a narinfo points to once, Jobs at a
// time, and compares it with every narinfo that points to it.
func (c *checker) checkNARs(ctx context.Context, keys []string, infos map[string]*narinfo.NarInfo, sizes map[string]int64) error {
	var files []*narFile
	byURL := make(map[[2]string]*narFile)
	for _, key := range keys {
		ni := infos[key]
		if ni == nil {
			continue
		}
		if _, ok := sizes[ni.URL]; !ok {
			continue // a missing-nar fault already
		}
		id := [2]string{ni.URL, ni.Compression}
		f := byURL[id]
		if f == nil {
			f = &narFile{url: ni.URL, algo: ni.Compression}
			byURL[id] = f
			files = append(files, f)
		}
		f.keys = append(f.keys, key)
	}
	// Largest first, so the long downloads overlap the many small ones.
	slices.SortStableFunc(files, func(a, b *narFile) int { return cmp.Compare(sizes[b.url], sizes[a.url]) })

	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(c.opts.Jobs)
	for _, f := range files {
		eg.Go(func() error {
			first := infos[f.keys[0]]
			r, err := downloadNAR(ctx, c.b, f.url, f.algo)
			if err != nil {
				return err
			}
			if r == nil { // deleted since the listing
				for _, key := range f.keys {
					c.fault(key, KindMissingNAR, "NAR %s of %s is not in the bucket", f.url, infos[key].StorePath)
				}
				return nil
			}
			c.mu.Lock()
			c.report.NARsChecked++
			c.report.FileBytes += r.fileSize
			if r.problem == nil {
				c.report.NarBytes += r.narSize
			}
			c.mu.Unlock()
			c.log.Debug("checked nar", "key", f.url, "path", first.StorePath, "bytes", r.fileSize)
			for _, key := range f.keys {
				c.record(compare(key, infos[key], r), false)
			}
			return nil
		})
	}
	return eg.Wait()
}

// CheckNAR downloads the NAR of ni (at ni.URL in b) and streams it
// through the checks of Options.Deep: FileHash and FileSize of the object,
// decompression, NarHash and NarSize of the NAR, and its structure. It
// returns where ni disagrees with the NAR, as faults of key (none when ni
// describes it); the error is for a bucket that fails.
func CheckNAR(ctx context.Context, b s3cache.Bucket, key string, ni *narinfo.NarInfo) ([]Fault, error) {
	r, err := downloadNAR(ctx, b, ni.URL, ni.Compression)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return []Fault{{Key: key, Kind: KindMissingNAR, Detail: fmt.Sprintf("NAR %s of %s is not in the bucket", ni.URL, ni.StorePath)}}, nil
	}
	return compare(key, ni, r), nil
}

// compare returns where one narinfo disagrees with its downloaded NAR.
func compare(key string, ni *narinfo.NarInfo, r *narResult) (faults []Fault) {
	fault := func(kind, format string, args ...any) {
		faults = append(faults, Fault{Key: key, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	if (ni.FileHash != nil && !sameHash(ni.FileHash, r.fileHash)) || (ni.FileSize != 0 && ni.FileSize != r.fileSize) {
		fault(KindFileHash, "NAR %s is %s (%d bytes), the narinfo says %s (%d bytes)",
			ni.URL, formatHash(r.fileHash), r.fileSize, formatHash(ni.FileHash), ni.FileSize)
	}
	var unsupported *unsupportedError
	switch {
	case errors.As(r.problem, &unsupported):
		fault(KindCompression, "cannot check NAR %s: %v", ni.URL, r.problem)
	case r.problem != nil:
		fault(KindNARInvalid, "NAR %s of %s: %v", ni.URL, ni.StorePath, r.problem)
	case !sameHash(ni.NarHash, r.narHash) || ni.NarSize != r.narSize:
		fault(KindNARHash, "NAR %s decompresses to %s (%d bytes), the narinfo says %s (%d bytes)",
			ni.URL, formatHash(r.narHash), r.narSize, formatHash(ni.NarHash), ni.NarSize)
	}
	return faults
}

// sameHash reports whether want (from a narinfo) is the SHA-256 got.
func sameHash(want, got *nixhash.Hash) bool {
	return want != nil && got != nil && want.Algo() == got.Algo() && string(want.Digest()) == string(got.Digest())
}

func formatHash(h *nixhash.Hash) string {
	if h == nil {
		return "(no hash)"
	}
	return h.Format(nixhash.NixBase32, true)
}

// downloadNAR streams one NAR object through the file hash, the
// decompressor, the NAR hash and nar.Check, without holding it in memory.
// It returns nil, nil if the object is gone, and an error only when the
// bucket fails; what is wrong with the object is in the result.
func downloadNAR(ctx context.Context, b s3cache.Bucket, key, algo string) (*narResult, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		if errors.Is(err, s3cache.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	defer rc.Close()
	body := &recordingReader{r: rc}
	file := nar.NewHasher()
	raw := io.TeeReader(body, file)
	res := &narResult{}
	res.problem = checkStream(raw, algo, res)
	// Read what the decompressor left, so that FileHash covers the object.
	if _, err := io.Copy(io.Discard, raw); err != nil && body.err == nil {
		res.problem = cmpErr(res.problem, err)
	}
	if body.err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, body.err)
	}
	res.fileHash, res.fileSize = file.Hash(), file.Size()
	return res, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// checkStream decompresses raw and checks the NAR, filling in its hash and
// size; it returns why the object is not a valid NAR, if it is not.
func checkStream(raw io.Reader, algo string, res *narResult) error {
	dr, err := decompressor(raw, algo)
	if err != nil {
		return err
	}
	defer dr.Close()
	h := nar.NewHasher()
	tee := io.TeeReader(dr, h)
	cerr := nar.Check(tee)
	if cerr != nil {
		_, _ = io.Copy(io.Discard, tee)
	}
	res.narHash, res.narSize = h.Hash(), h.Size()
	return cerr
}

// unsupportedError is a compression this package cannot decompress.
type unsupportedError struct{ algo string }

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("compression %q is not supported here (xz, zstd, bzip2, none are)", e.algo)
}

// decompressor opens a decompressing reader for a narinfo's Compression.
func decompressor(r io.Reader, algo string) (io.ReadCloser, error) {
	switch algo {
	case "bzip2":
		return io.NopCloser(bzip2.NewReader(r)), nil
	case "", compression.None:
		return io.NopCloser(r), nil
	}
	if compression.Check(algo) != nil {
		return nil, &unsupportedError{algo}
	}
	return compression.NewReader(r, algo)
}

// recordingReader keeps the first error (other than EOF) of the bucket's
// body, so that a broken download is told apart from a corrupt object.
type recordingReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	return n, err
}
