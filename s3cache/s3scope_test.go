package s3cache_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
)

// TestS3WrongRegion signs every operation for a region the server is not
// in (the servers are in "garage", as Garage): each fails at once, in one
// request, with ErrSignatureScope and a line that says which region to
// use: the server's own word where its answer has a body, Garage's hint
// for a HEAD's bodiless 400.
func TestS3WrongRegion(t *testing.T) {
	t.Parallel()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			proxy := s3test.NewFaultProxy(t, srv.Endpoint)
			for _, region := range []string{"us-east-1", "eu-west-1"} {
				before := proxy.Requests()
				b := openURL(t, "s3://"+srv.Bucket+"?endpoint="+proxy.URL+"&region="+region, srv.Options())
				errs := everyOp(t.Context(), b)
				// MinIO answers a DeleteObjects signed for another region
				// with 200 and an AuthorizationHeaderMalformed error for
				// each key, which Delete reports as it does any key's.
				delete(errs, "Delete")
				if err := b.Delete(t.Context(), "k"); err == nil || !strings.Contains(err.Error(), "garage") {
					t.Errorf("region=%s: Delete error = %v, want one naming region garage", region, err)
				}
				for op, err := range errs {
					want := "the server refused the request's signature scope: the server wants region=garage, not region=" + region
					if op == "Stat" && kind == s3test.VersityGW {
						// A HEAD's 400 has no body; MinIO, as AWS, still
						// names its region in x-amz-bucket-region.
						want = "the server refused the request's signature scope: Garage wants region=garage (or its s3_region); the request was signed for region=" + region
					}
					switch {
					case !errors.Is(err, s3cache.ErrSignatureScope):
						t.Errorf("region=%s: %s error = %v, want ErrSignatureScope", region, op, err)
					case !strings.Contains(err.Error(), want):
						t.Errorf("region=%s: %s error %q does not say %q", region, op, err, want)
					case strings.Contains(err.Error(), srv.SecretKey), strings.Contains(err.Error(), "\n"):
						t.Errorf("region=%s: %s error %q shows the secret or is not one line", region, op, err)
					}
				}
				if n := proxy.Requests() - before; n != len(errs)+2 {
					t.Errorf("region=%s: %d requests for %d operations, want one each (no retries)", region, n, len(errs))
				}
			}
		})
	}
}

// TestS3OtherBadRequest checks that the other 400s keep their own
// message: one whose body names another cause, even to the first
// request, and one without a body after the server took the bucket's
// signatures.
func TestS3OtherBadRequest(t *testing.T) {
	t.Parallel()
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			_, err := srv.Open(t, srv.Bucket).Get(t.Context(), strings.Repeat("k", 1100))
			t.Logf("first request, a GET of a 1100-byte key: %v", err)
			if err == nil || errors.Is(err, s3cache.ErrSignatureScope) || strings.Contains(err.Error(), "region") {
				t.Errorf("a GET of a 1100-byte key as the first request: %v, want the server's own error", err)
			}

			b := srv.Open(t, srv.Bucket)
			if _, err := b.Stat(t.Context(), "nix-cache-info"); !errors.Is(err, s3cache.ErrNotFound) {
				t.Fatalf("Stat nix-cache-info: %v, want ErrNotFound", err)
			}
			_, err = b.Stat(t.Context(), strings.Repeat("k", 1100)) // longer than S3's 1024 bytes
			t.Logf("Stat of a 1100-byte key: %v", err)
			if err == nil || errors.Is(err, s3cache.ErrSignatureScope) || strings.Contains(err.Error(), "region") {
				t.Errorf("Stat of a 1100-byte key after a request was taken: %v, want the server's own error", err)
			}
		})
	}
}
