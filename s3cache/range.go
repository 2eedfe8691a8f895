package s3cache

// Ranged reads. Like the s3*.go files, this file uses the AWS SDK (for
// S3Bucket's GetRange).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// RangeGetter is implemented by buckets that can open part of an object in
// one request, as a server of HTTP Range requests needs to resume an
// interrupted download without sending the whole object again.
type RangeGetter interface {
	// GetRange opens the n bytes of key that start at offset off (n < 0:
	// up to the end) and returns the whole object's metadata (Size is the
	// object's size, not the range's). off must be less than the size. A
	// missing key is an error wrapping ErrNotFound.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, ObjectInfo, error)
}

var (
	_ RangeGetter = (*S3Bucket)(nil)
	_ RangeGetter = (*FileBucket)(nil)
)

// GetRange opens the n bytes of key in b that start at off (n < 0: up to
// the end) and returns the object's metadata: in one ranged request if b is
// a RangeGetter, else by opening the whole object and skipping off bytes.
func GetRange(ctx context.Context, b Bucket, key string, off, n int64) (io.ReadCloser, ObjectInfo, error) {
	if off < 0 {
		return nil, ObjectInfo{}, fmt.Errorf("getting %s from offset %d: negative offset", key, off)
	}
	if g, ok := b.(RangeGetter); ok {
		return g.GetRange(ctx, key, off, n)
	}
	rc, info, err := GetWithInfo(ctx, b, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		rc.Close()
		return nil, ObjectInfo{}, fmt.Errorf("getting %s from offset %d: %w", key, off, err)
	}
	return limitRange(rc, n), info, nil
}

// limitRange limits rc to its first n bytes (n < 0: all of them).
func limitRange(rc io.ReadCloser, n int64) io.ReadCloser {
	if n < 0 {
		return rc
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, n), rc}
}

// GetRange implements RangeGetter with a ranged GetObject; the object's
// size comes from the response's Content-Range.
func (b *S3Bucket) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, ObjectInfo, error) {
	if n == 0 {
		// "bytes=off-(off-1)" is not a range: open nothing, say what is there.
		info, err := b.Stat(ctx, key)
		return io.NopCloser(strings.NewReader("")), info, err
	}
	out, err := b.getRange(ctx, key, "", off, n)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			b.exists.Store(true)
		}
		return nil, ObjectInfo{}, err
	}
	b.exists.Store(true)
	if Decodes(key) && len(codings(aws.ToString(out.ContentEncoding))) > 0 {
		// Offsets are in the decoded object: decode it whole.
		out.Body.Close()
		rc, info, err := b.GetWithInfo(ctx, key)
		if err != nil {
			return nil, ObjectInfo{}, err
		}
		if _, err := rc.(io.Seeker).Seek(off, io.SeekStart); err != nil {
			return nil, ObjectInfo{}, fmt.Errorf("getting %s from offset %d: %w", key, off, err)
		}
		return limitRange(rc, n), info, nil
	}
	size := aws.ToInt64(out.ContentLength)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		total, err := strconv.ParseInt(cr[strings.LastIndexByte(cr, '/')+1:], 10, 64)
		if err != nil {
			out.Body.Close()
			return nil, ObjectInfo{}, fmt.Errorf("getting %s in bucket %q at %s: bad Content-Range %q", key, b.bucket, b.where, cr)
		}
		size = total
	}
	return limitRange(out.Body, n), ObjectInfo{
		Key:             key,
		Size:            size,
		LastModified:    aws.ToTime(out.LastModified),
		ETag:            strings.Trim(aws.ToString(out.ETag), `"`),
		ContentType:     aws.ToString(out.ContentType),
		ContentEncoding: aws.ToString(out.ContentEncoding),
	}, nil
}

// GetRange implements RangeGetter by seeking the file.
func (f *FileBucket) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, ObjectInfo, error) {
	rc, info, err := f.GetWithInfo(ctx, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if _, err := rc.(io.Seeker).Seek(off, io.SeekStart); err != nil {
		rc.Close()
		return nil, ObjectInfo{}, fmt.Errorf("getting %s from offset %d: %w", key, off, err)
	}
	return limitRange(rc, n), info, nil
}
