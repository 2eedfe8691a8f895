package s3cache_test

import (
	"errors"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
)

// TestS3AbortMultipartRule asks each real server for the rule: versitygw
// does not implement bucket lifecycle; MinIO does, but refuses a rule
// whose only action is AbortIncompleteMultipartUpload. Both come back as
// a LifecycleError naming the server's code, the same on a second try.
func TestS3AbortMultipartRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, code   string
		notSupported bool
	}{
		{s3test.VersityGW, "NotImplemented", true},
		{s3test.MinIO, "InvalidArgument", false},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, tc.kind)
			b := srv.Open(t, srv.Bucket)
			for range 2 {
				_, err := b.EnsureAbortMultipartRule(t.Context(), 1)
				var le *s3cache.LifecycleError
				if !errors.As(err, &le) || le.Code != tc.code || errors.Is(err, s3cache.ErrLifecycleNotSupported) != tc.notSupported {
					t.Fatalf("EnsureAbortMultipartRule: %v, want a LifecycleError %s (not supported: %v)", err, tc.code, tc.notSupported)
				}
				t.Log(err)
			}
			if _, err := b.EnsureAbortMultipartRule(t.Context(), 0); err == nil {
				t.Error("EnsureAbortMultipartRule(0 days) succeeded")
			}
		})
	}
}
