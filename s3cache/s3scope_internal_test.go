package s3cache

import "testing"

// TestWantedRegion reads the expected region out of each server's
// AuthorizationHeaderMalformed message.
func TestWantedRegion(t *testing.T) {
	for _, tc := range []struct{ server, msg, want string }{
		{"MinIO", "The authorization header is malformed; the region is wrong; expecting 'garage'.", "garage"},
		{"versitygw", `The authorization header is malformed; the region "us-east-1" is wrong; expecting "garage"`, "garage"},
		{"AWS", "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'", "eu-west-1"},
		{"Garage", "Authorization header malformed, unexpected scope: '20250101/us-east-1/s3/aws4_request', expected: '20250101/garage/s3/aws4_request'", "garage"},
		{"Garage before 1.0", "Authorization header malformed, unexpected scope: 20250101/us-east-1/s3/aws4_request", ""},
		{"other", "Invalid argument", ""},
	} {
		if got := wantedRegion(tc.msg, nil); got != tc.want {
			t.Errorf("%s: wantedRegion(%q) = %q, want %q", tc.server, tc.msg, got, tc.want)
		}
	}
}
