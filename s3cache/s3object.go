package s3cache

// S3Bucket: reading, deleting, and the server's clock and name.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Stat implements Bucket with HeadObject. A HEAD response has no body, so
// a missing bucket (or, on versitygw, an unknown access key) answers 404
// as a missing key does: until the bucket is known to exist, a key that
// seems missing is asked for again with a GET, whose error says which.
func (b *S3Bucket) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		err = b.wrap("stating", key, err)
		if errors.Is(err, ErrNotFound) && !b.exists.Load() {
			// One GET at a time: once one says NoSuchKey, the others'
			// 404s are missing keys too.
			b.probe.Lock()
			defer b.probe.Unlock()
			if b.exists.Load() {
				return ObjectInfo{}, err
			}
			rc, info, gerr := b.GetWithInfo(ctx, key)
			if gerr == nil {
				rc.Close() // created meanwhile
				return info, nil
			}
			return ObjectInfo{}, gerr
		}
		return ObjectInfo{}, err
	}
	b.exists.Store(true)
	return ObjectInfo{
		Key:             key,
		Size:            aws.ToInt64(out.ContentLength),
		LastModified:    aws.ToTime(out.LastModified),
		ETag:            strings.Trim(aws.ToString(out.ETag), `"`),
		ContentType:     aws.ToString(out.ContentType),
		ContentEncoding: aws.ToString(out.ContentEncoding),
	}, nil
}

// Get implements Bucket with GetObject.
func (b *S3Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := b.GetWithInfo(ctx, key)
	return rc, err
}

// GetWithInfo implements InfoGetter with GetObject. A narinfo, listing
// or log stored with a Content-Encoding is read whole and decoded
// (decodeBody), and its info gives the decoded size.
func (b *S3Bucket) GetWithInfo(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		err = b.wrap("getting", key, err)
		if errors.Is(err, ErrNotFound) {
			b.exists.Store(true) // NoSuchKey: the bucket is there
		}
		return nil, ObjectInfo{}, err
	}
	b.exists.Store(true)
	etag := aws.ToString(out.ETag)
	body := &resumingBody{ctx: ctx, b: b, key: key, etag: etag, rc: out.Body}
	info := ObjectInfo{
		Key:             key,
		Size:            aws.ToInt64(out.ContentLength),
		LastModified:    aws.ToTime(out.LastModified),
		ETag:            strings.Trim(aws.ToString(out.ETag), `"`),
		ContentType:     aws.ToString(out.ContentType),
		ContentEncoding: aws.ToString(out.ContentEncoding),
	}
	return decoded(key, body, info)
}

// decoded returns body and info as they are, unless key is one that
// Decodes names and info has a Content-Encoding: then the body decoded
// (read whole, bounded) and info with its size.
func decoded(key string, body io.ReadCloser, info ObjectInfo) (io.ReadCloser, ObjectInfo, error) {
	if !Decodes(key) || len(codings(info.ContentEncoding)) == 0 {
		return body, info, nil
	}
	data, err := decodeBody(key, info.ContentEncoding, body)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	info.Size, info.ContentEncoding = int64(len(data)), ""
	return memBody{bytes.NewReader(data)}, info, nil
}

// memBody is a decoded object: a ReadSeekCloser in memory.
type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

// getFrom GETs key from byte off on, if its ETag is still etag (a body
// being resumed).
func (b *S3Bucket) getFrom(ctx context.Context, key, etag string, off int64) (io.ReadCloser, error) {
	out, err := b.getRange(ctx, key, etag, off, -1)
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

// getRange sends a GetObject of the n bytes of key from off on (n < 0: to
// the end), only while its ETag is etag if etag is set. A server that
// ignores the range sends the whole object: its body is skipped to off.
func (b *S3Bucket) getRange(ctx context.Context, key, etag string, off, n int64) (*s3.GetObjectOutput, error) {
	r := "bytes=" + strconv.FormatInt(off, 10) + "-"
	if n > 0 {
		r += strconv.FormatInt(off+n-1, 10)
	}
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: &key, Range: &r}
	if etag != "" {
		in.IfMatch = &etag
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		return nil, b.wrap("getting", key, err)
	}
	if out.ContentRange == nil && off > 0 {
		if _, err := io.CopyN(io.Discard, out.Body, off); err != nil {
			out.Body.Close()
			return nil, b.wrap("getting", key, err)
		}
	}
	return out, nil
}

// Delete implements Bucket with DeleteObjects, DeleteBatchSize keys per
// request, each carrying Content-MD5 (which S3 and Garage require).
func (b *S3Bucket) Delete(ctx context.Context, keys ...string) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), b.opts.DeleteBatchSize)]
		keys = keys[len(batch):]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i := range batch {
			ids[i] = types.ObjectIdentifier{Key: &batch[i]}
		}
		out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &b.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}, s3.WithAPIOptions(addContentMD5))
		if err != nil {
			return b.wrap("deleting", batch[0], err)
		}
		// Deleting a key that is gone succeeds in S3; versitygw reports
		// NoSuchKey when another client deleted it meanwhile.
		errs := slices.DeleteFunc(out.Errors, func(e types.Error) bool { return aws.ToString(e.Code) == "NoSuchKey" })
		if len(errs) > 0 {
			e := errs[0]
			return b.remote(nil, nil, "deleting %s in bucket %q at %s: %s: %s (and %d more errors)",
				aws.ToString(e.Key), b.bucket, b.where, aws.ToString(e.Code), aws.ToString(e.Message), len(errs)-1)
		}
	}
	return nil
}

// addContentMD5 adds a Content-MD5 header computed from the serialized
// request body: the SDK sends only a CRC32 checksum for DeleteObjects,
// which some S3 servers refuse.
func addContentMD5(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("nixbucketContentMD5",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			req, ok := in.Request.(*smithyhttp.Request)
			if ok && req.GetStream() != nil && req.Header.Get("Content-MD5") == "" {
				body, err := io.ReadAll(req.GetStream())
				if err != nil {
					return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("reading request body: %w", err)
				}
				req.Header.Set("Content-MD5", *contentMD5(body))
				if in.Request, err = req.SetStream(bytes.NewReader(body)); err != nil {
					return middleware.BuildOutput{}, middleware.Metadata{}, err
				}
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
}

// ServerTime returns the server's clock, from the Date header of a
// HeadBucket response (whole seconds, truncated: at most a second behind).
// Object times (LastModified) come from this clock, so code comparing them
// with "now" (gc's grace, lock staleness) reads it rather than trusting
// the local clock.
func (b *S3Bucket) ServerTime(ctx context.Context) (time.Time, error) {
	out, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket})
	if err != nil {
		werr := b.wrap("reading the clock of", b.bucket, err)
		if errors.Is(werr, ErrNotFound) { // a HEAD's 404 has no body to say more
			return time.Time{}, b.remote(ErrNoSuchBucket, err, "reading the clock of bucket %q: it does not exist at %s", b.bucket, b.where)
		}
		return time.Time{}, werr
	}
	raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
	if !ok || raw.Header.Get("Date") == "" {
		return time.Time{}, b.remote(nil, nil, "reading the clock of bucket %q at %s: no Date header in the response", b.bucket, b.where)
	}
	t, err := http.ParseTime(raw.Header.Get("Date"))
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the clock of bucket %q at %s: %w", b.bucket, b.where, err)
	}
	return t.UTC(), nil
}

// ServerName returns the Server header of the server's answer to a
// HeadBucket ("MinIO", "VERSITYGW", "AmazonS3", "Garage"…), "" when it
// sends none: for messages that concern one server's behaviour only.
func (b *S3Bucket) ServerName(ctx context.Context) (string, error) {
	out, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.bucket})
	if err != nil {
		return "", b.wrap("asking the server of", b.bucket, err)
	}
	raw, _ := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
	if raw == nil {
		return "", nil
	}
	return raw.Header.Get("Server"), nil
}
