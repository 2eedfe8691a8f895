package s3cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) by Stat and Get when the key does not
// exist.
var ErrNotFound = errors.New("object not found")

// ErrNoSuchBucket is returned (wrapped) when the bucket itself does not
// exist. It does not heal by retrying.
var ErrNoSuchBucket = errors.New("bucket does not exist")

// ErrAccessDenied is returned (wrapped) when the server refuses the
// credentials or the request (HTTP 403: AccessDenied, InvalidAccessKeyId,
// SignatureDoesNotMatch). It does not heal by retrying.
var ErrAccessDenied = errors.New("access denied")

// ErrSizeMismatch is returned (wrapped) by Put when the reader yields a
// different number of bytes than the declared size.
var ErrSizeMismatch = errors.New("size mismatch")

// ErrInvalidKey is returned (wrapped) for a key a bucket cannot hold: empty,
// absolute, or (for file:// buckets) with "." or ".." components.
var ErrInvalidKey = errors.New("invalid object key")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is the object's key, e.g. "nar/<hash>.nar.xz".
	Key string
	// Size is the object's length in bytes.
	Size int64
	// LastModified is when the object was last written.
	LastModified time.Time
	// ETag is the server's entity tag, quotes removed; "" if unknown.
	ETag string
	// ContentType is the object's media type; List leaves it "" on S3,
	// which does not return it in listings.
	ContentType string
	// ContentEncoding is the Content-Encoding the object is stored with
	// ("" for none): as stored on S3 (List leaves it ""); for a narinfo
	// file of a file:// cache, the compression its first bytes show. Get,
	// GetWithInfo and GetRange decode the objects Decodes names, and then
	// describe the decoded object: its Size, and ContentEncoding "".
	ContentEncoding string
}

// PutOptions are the per-object settings of a Put.
type PutOptions struct {
	// ContentType is stored as the object's Content-Type;
	// "application/octet-stream" if empty.
	ContentType string
	// CacheControl, if set, is stored as the object's Cache-Control.
	CacheControl string
	// ContentEncoding, if set, is stored as the object's Content-Encoding
	// (Nix's narinfo-compression).
	ContentEncoding string
	// PartSize is the multipart part size in bytes for streams; 0 means the
	// bucket's default (the URL's multipart-chunk-size, else 5 MiB). It is
	// raised to at least 5 MiB and so that ExpectedSize fits in 10 000 parts.
	PartSize int64
	// ExpectedSize, for a stream of unknown length (size -1), is an upper
	// estimate of its length used to choose the part size; 0 if unknown.
	ExpectedSize int64
	// Concurrency is the number of parts uploaded at once; 0 means 4.
	// Memory held by a streaming Put is PartSize × Concurrency.
	Concurrency int
}

// Bucket is a flat key/value object store: an S3 bucket, a directory, or
// memory. Keys are slash-separated relative paths such as
// "nar/abc.nar.xz". Implementations are safe for concurrent use. Every
// method honours ctx: when it is cancelled the call returns an error
// wrapping ctx.Err().
type Bucket interface {
	// Stat returns the object's metadata, or an error wrapping ErrNotFound
	// if the key does not exist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// Get opens the object for reading; the caller must Close the reader.
	// It returns an error wrapping ErrNotFound if the key does not exist.
	// Errors while reading the body are returned by Read and not retried.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// Put stores the content of r under key, replacing any object there.
	// size is the exact length of r, or -1 for a stream of unknown length.
	// If size >= 0 and r yields a different number of bytes, Put fails.
	// The object becomes visible only once complete: if Put fails or ctx
	// is cancelled, no new object appears under key and no unfinished
	// multipart upload is left behind. Put does not close r, and reads
	// from it only in the calling goroutine; when r is an io.Pipe, the
	// caller closes it (with an error) if Put returns early, so that the
	// writer does not block forever.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error

	// List calls fn for every object whose key starts with prefix, in
	// ascending byte order of keys, paging through the listing. It stops
	// and returns fn's error (unwrapped) if fn returns one.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the given keys, in batches where the server allows.
	// Deleting a key that does not exist is not an error.
	Delete(ctx context.Context, keys ...string) error
}

// InfoGetter is implemented by buckets that can open an object and return
// its metadata in one request, as a server of HEAD/GET requests needs.
type InfoGetter interface {
	// GetWithInfo is Get that also returns the object's metadata.
	GetWithInfo(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
}

// GetWithInfo opens key in b and returns its metadata, in one request if b
// is an InfoGetter, else with Stat then Get.
func GetWithInfo(ctx context.Context, b Bucket, key string) (io.ReadCloser, ObjectInfo, error) {
	if g, ok := b.(InfoGetter); ok {
		return g.GetWithInfo(ctx, key)
	}
	info, err := b.Stat(ctx, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	return rc, info, nil
}

// RangeLister is implemented by buckets that can start a listing after a
// given key on the server (S3's StartAfter), so a caller can skip a whole
// range of keys, such as nar/, without paging through it.
type RangeLister interface {
	// ListAfter is List restricted to the keys greater than startAfter.
	ListAfter(ctx context.Context, prefix, startAfter string, fn func(ObjectInfo) error) error
}

// Page is what one LIST request returns.
type Page struct {
	// Objects are the page's objects, in ascending key order.
	Objects []ObjectInfo
	// More is true when the listing has more pages, each a request.
	More bool
}

// PageLister is implemented by buckets whose listing costs one request a
// page (S3), so that a caller can count the requests and stop before
// making one more.
type PageLister interface {
	// ListPages calls fn with each page of the keys under prefix that are
	// greater than startAfter ("" for all), in ascending order. It makes
	// the next request only after fn returns, and stops and returns fn's
	// error (unwrapped) if fn returns one.
	ListPages(ctx context.Context, prefix, startAfter string, fn func(Page) error) error
}

// ListPageSize is the number of keys of a full S3 LIST page, and of the
// pages ListPages cuts from buckets that are not PageListers.
const ListPageSize = 1000

// ListPages lists the keys of b under prefix that are greater than
// startAfter, page by page: one page a request when b is a PageLister,
// else pages of ListPageSize keys cut from ListAfter (a local listing,
// where pages cost nothing).
func ListPages(ctx context.Context, b Bucket, prefix, startAfter string, fn func(Page) error) error {
	if p, ok := b.(PageLister); ok {
		return p.ListPages(ctx, prefix, startAfter, fn)
	}
	var cur []ObjectInfo
	err := ListAfter(ctx, b, prefix, startAfter, func(o ObjectInfo) error {
		if len(cur) == ListPageSize {
			if err := fn(Page{Objects: cur, More: true}); err != nil {
				return err
			}
			cur = nil
		}
		cur = append(cur, o)
		return nil
	})
	if err != nil {
		return err
	}
	return fn(Page{Objects: cur})
}

// ListAfter lists the keys of b under prefix that are greater than
// startAfter: on the server when b is a RangeLister, else by filtering List.
func ListAfter(ctx context.Context, b Bucket, prefix, startAfter string, fn func(ObjectInfo) error) error {
	if r, ok := b.(RangeLister); ok {
		return r.ListAfter(ctx, prefix, startAfter, fn)
	}
	return b.List(ctx, prefix, func(o ObjectInfo) error {
		if o.Key <= startAfter {
			return nil
		}
		return fn(o)
	})
}

// ReadSmall reads a small object (a narinfo, a manifest, a lock) whole,
// refusing one larger than max bytes. A missing key is an error wrapping
// ErrNotFound.
func ReadSmall(ctx context.Context, b Bucket, key string, max int64) ([]byte, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("reading %s: larger than %d bytes", key, max)
	}
	return data, nil
}

// Upload is an unfinished multipart upload.
type Upload struct {
	// Key is the key the upload would create.
	Key string
	// UploadID identifies the upload to AbortMultipartUpload.
	UploadID string
	// Initiated is when the upload was started.
	Initiated time.Time
}

// Multiparter is implemented by buckets that have multipart uploads (S3):
// garbage collection finds uploads abandoned by killed pushes and aborts
// them.
type Multiparter interface {
	// ListMultipartUploads calls fn for every unfinished multipart upload
	// whose key starts with prefix, paging through the listing. It stops
	// and returns fn's error if fn returns one.
	ListMultipartUploads(ctx context.Context, prefix string, fn func(Upload) error) error

	// AbortMultipartUpload aborts an unfinished upload, freeing its parts.
	// Aborting an upload that no longer exists returns an error wrapping
	// ErrNotFound.
	AbortMultipartUpload(ctx context.Context, key, uploadID string) error
}

// Open opens the bucket that u names: an S3 bucket (with default
// S3Options) for s3:// URLs, a directory for file:// URLs. It does not
// contact the server.
func Open(ctx context.Context, u *URL) (Bucket, error) {
	switch u.Scheme {
	case SchemeS3:
		return OpenS3(ctx, u, S3Options{})
	case SchemeFile:
		return NewFileBucket(u.Dir)
	default:
		return nil, fmt.Errorf("opening bucket %s: unsupported scheme %q", u, u.Scheme)
	}
}

// ctxReader makes reads from r fail once ctx is done, so that a Put reading
// a stream notices cancellation between reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// checkSize verifies that a Put of declared size (-1: unknown) received
// exactly n bytes; n is size+1 when the reader had more.
func checkSize(key string, size, n int64) error {
	if size >= 0 && n != size {
		return fmt.Errorf("putting %s: read %d bytes, want %d: %w", key, n, size, ErrSizeMismatch)
	}
	return nil
}
