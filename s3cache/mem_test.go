package s3cache_test

import (
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3cachetest"
	"github.com/nixbucket/nixbucket/s3cache"
)

func TestMemBucket(t *testing.T) {
	t.Parallel()
	s3cachetest.Run(t, func(t *testing.T) s3cache.Bucket { return s3cache.NewMemBucket() })
}
