package stats_test

import (
	"testing"

	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

// TestCacheLabel checks the cache label: the bucket and where it is,
// without signing keys, parameters or an endpoint's userinfo.
func TestCacheLabel(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"s3://cache", "s3://cache"},
		{"s3://cache?region=eu-west-1&secret-key=/etc/nix/key&compression=zstd", "s3://cache?region=eu-west-1"},
		{"s3://cache?endpoint=http://127.0.0.1:9000&region=garage", "s3://cache?endpoint=http://127.0.0.1:9000&region=garage"},
		{"file:///srv/cache?compression=none", "file:///srv/cache"},
	} {
		u, err := s3cache.ParseURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if got := stats.CacheLabel(u); got != tc.want {
			t.Errorf("CacheLabel(%s) = %q, want %q", tc.url, got, tc.want)
		}
	}
	// ParseURL refuses credentials in the endpoint; a URL made otherwise
	// still loses them.
	u := &s3cache.URL{Scheme: s3cache.SchemeS3, Bucket: "cache", Endpoint: "https://ci:hunter2hunter2@s3.example.org"}
	if got, want := stats.CacheLabel(u), "s3://cache?endpoint=https://s3.example.org"; got != want {
		t.Errorf("CacheLabel of an endpoint with userinfo = %q, want %q", got, want)
	}
}
