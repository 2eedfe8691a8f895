package s3cache

// S3Bucket: multipart uploads, the one a Put streams and the unfinished
// ones gc lists and aborts.

import (
	"bytes"
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3Multipart is one multipart upload in an S3Bucket.
type s3Multipart struct {
	b   *S3Bucket
	key string
	id  string
}

func (m *s3Multipart) uploadPart(ctx context.Context, n int32, body []byte) (string, error) {
	out, err := m.b.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        &m.b.bucket,
		Key:           &m.key,
		UploadId:      &m.id,
		PartNumber:    aws.Int32(n),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentMD5:    contentMD5(body),
	}, m.b.payloadOptions()...)
	if err != nil {
		return "", m.b.wrap("uploading part of", m.key, err)
	}
	return aws.ToString(out.ETag), nil
}

func (m *s3Multipart) complete(ctx context.Context, etags []string) error {
	parts := make([]types.CompletedPart, len(etags))
	for i, e := range etags {
		parts[i] = types.CompletedPart{ETag: aws.String(e), PartNumber: aws.Int32(int32(i + 1))}
	}
	_, err := m.b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &m.b.bucket,
		Key:             &m.key,
		UploadId:        &m.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return m.b.wrap("completing multipart upload of", m.key, err)
	}
	return nil
}

func (m *s3Multipart) abort(ctx context.Context) error {
	m.b.logger.DebugContext(ctx, "aborting multipart upload", "key", m.key)
	return m.b.AbortMultipartUpload(ctx, m.key, m.id)
}

// ListMultipartUploads implements Multiparter.
func (b *S3Bucket) ListMultipartUploads(ctx context.Context, prefix string, fn func(Upload) error) error {
	in := &s3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: &prefix, MaxUploads: aws.Int32(int32(b.opts.ListPageSize))}
	for {
		out, err := b.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return b.wrap("listing multipart uploads", prefix, err)
		}
		for _, u := range out.Uploads {
			err := fn(Upload{Key: aws.ToString(u.Key), UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
			if err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		if aws.ToString(out.NextKeyMarker) == "" && aws.ToString(out.NextUploadIdMarker) == "" {
			return fmt.Errorf("listing multipart uploads %s: truncated listing without a next marker", prefix)
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// AbortMultipartUpload implements Multiparter.
func (b *S3Bucket) AbortMultipartUpload(ctx context.Context, key, uploadID string) error {
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &b.bucket, Key: &key, UploadId: &uploadID,
	})
	if err != nil {
		return b.wrap("aborting multipart upload of", key, err)
	}
	return nil
}
