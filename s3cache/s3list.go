package s3cache

// S3Bucket: listing.

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// List implements Bucket with ListObjectsV2.
func (b *S3Bucket) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return b.ListAfter(ctx, prefix, "", fn)
}

// ListAfter implements RangeLister with ListObjectsV2's StartAfter.
func (b *S3Bucket) ListAfter(ctx context.Context, prefix, startAfter string, fn func(ObjectInfo) error) error {
	return b.ListPages(ctx, prefix, startAfter, func(p Page) error {
		for _, o := range p.Objects {
			if err := fn(o); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListPages implements PageLister: one ListObjectsV2 request a page.
func (b *S3Bucket) ListPages(ctx context.Context, prefix, startAfter string, fn func(Page) error) error {
	in := &s3.ListObjectsV2Input{
		Bucket:  &b.bucket,
		Prefix:  &prefix,
		MaxKeys: aws.Int32(int32(b.opts.ListPageSize)),
	}
	if startAfter != "" {
		in.StartAfter = &startAfter
	}
	p := s3.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return b.wrap("listing", prefix, err)
		}
		objs := make([]ObjectInfo, len(page.Contents))
		for i, o := range page.Contents {
			objs[i] = ObjectInfo{
				Key:          aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				LastModified: aws.ToTime(o.LastModified),
				ETag:         strings.Trim(aws.ToString(o.ETag), `"`),
			}
		}
		if err := fn(Page{Objects: objs, More: p.HasMorePages()}); err != nil {
			return err
		}
	}
	return nil
}
