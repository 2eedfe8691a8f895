package s3cache

// S3Bucket: writing objects, in one request or as a multipart upload.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// payloadOptions are the per-request options of PutObject and UploadPart.
// They never send `Expect: 100-continue` (the SDK does over 2 MB): it
// costs a round trip per request before the body goes, and the bodies
// here are already in memory, so a refused one costs nothing to resend.
// And, if the bucket says so, an unsigned payload: the body is still
// covered, as its Content-MD5 header is signed, so it cannot be altered
// in transit even over plain http; and one SHA-256 pass over every
// uploaded byte is saved.
func (b *S3Bucket) payloadOptions() []func(*s3.Options) {
	opts := []func(*s3.Options){noExpectContinue}
	if b.unsigned {
		opts = append(opts, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	}
	return opts
}

// noExpectContinue turns off the SDK's `Expect: 100-continue` header.
func noExpectContinue(o *s3.Options) { o.ContinueHeaderThresholdBytes = -1 }

func contentMD5(p []byte) *string {
	sum := md5.Sum(p)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

// Put implements Bucket. A narinfo is encoded with the URL's
// narinfo-compression, if any. An object that fits in one part is sent
// with one PutObject; a longer one is streamed as a multipart upload, PartSize ×
// Concurrency bytes in memory at most, each part retried on its own, the
// upload aborted on any failure. Every request carries Content-MD5.
func (b *S3Bucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if key == "" {
		return fmt.Errorf("putting %q: %w", key, ErrInvalidKey)
	}
	r, size, opts, err := b.encodeNarInfo(key, r, size, opts)
	if err != nil {
		return err
	}
	base := opts.PartSize
	if base == 0 {
		base = b.url.PartSize
	}
	hint := size
	if hint < 0 {
		hint = opts.ExpectedSize
	}
	partSize := partSizeFor(base, hint)
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = defaultConcurrency
	}
	if opts.ContentType == "" {
		opts.ContentType = "application/octet-stream"
	}

	cr := ctxReader{ctx, r}
	first := b.pool.get(partSize)
	n, eof, err := readPart(cr, *first)
	if err != nil {
		b.pool.put(first)
		return fmt.Errorf("putting %s: reading: %w", key, err)
	}
	if size >= 0 && int64(n) > size {
		b.pool.put(first)
		return checkSize(key, size, int64(n))
	}
	if !eof && size >= 0 && int64(n) == size {
		// Exactly size bytes so far: the stream must end here.
		var one [1]byte
		m, _ := io.ReadFull(cr, one[:])
		n += m
		eof = m == 0
		if err := ctx.Err(); err != nil {
			b.pool.put(first)
			return fmt.Errorf("putting %s: %w", key, err)
		}
		if !eof {
			b.pool.put(first)
			return checkSize(key, size, size+1)
		}
	}
	if eof {
		defer b.pool.put(first)
		if err := checkSize(key, size, int64(n)); err != nil {
			return err
		}
		body := (*first)[:n]
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:          &b.bucket,
			Key:             &key,
			Body:            bytes.NewReader(body),
			ContentLength:   aws.Int64(int64(n)),
			ContentMD5:      contentMD5(body),
			ContentType:     aws.String(opts.ContentType),
			CacheControl:    nonEmpty(opts.CacheControl),
			ContentEncoding: nonEmpty(opts.ContentEncoding),
			StorageClass:    types.StorageClass(b.url.StorageClass),
		}, b.payloadOptions()...)
		if err != nil {
			return b.wrap("putting", key, err)
		}
		return nil
	}

	// Started even if ctx is cancelled meanwhile: an upload the server
	// created but whose id we never learnt could not be aborted. A
	// cancelled ctx then makes the streamer abort it at once.
	cctx, cancelCreate := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	up, err := b.client.CreateMultipartUpload(cctx, &s3.CreateMultipartUploadInput{
		Bucket:          &b.bucket,
		Key:             &key,
		ContentType:     aws.String(opts.ContentType),
		CacheControl:    nonEmpty(opts.CacheControl),
		ContentEncoding: nonEmpty(opts.ContentEncoding),
		StorageClass:    types.StorageClass(b.url.StorageClass),
	})
	cancelCreate()
	if err != nil {
		b.pool.put(first)
		return b.wrap("starting multipart upload of", key, err)
	}
	mu := &s3Multipart{b: b, key: key, id: aws.ToString(up.UploadId)}
	s := streamer{key: key, size: size, partSize: partSize, concurrency: concurrency, pool: &b.pool}
	total, err := s.upload(ctx, mu, first, cr)
	if err != nil {
		return fmt.Errorf("putting %s (%d bytes read): %w", key, total, err)
	}
	return nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
