package s3cache

import "net/http"

// NewHTTPClient returns an HTTP client with the connect and stall timeouts
// of opts (ConnectTimeout, StallTimeout, HTTPClient; defaults filled in),
// the same as an S3Bucket's, for the other HTTP clients of a cache
// (package httpcache). A stall surfaces as a *StallError.
func NewHTTPClient(opts S3Options) *http.Client {
	c, _ := httpClient(opts.withDefaults(), nil) // without a certificate it cannot fail
	return c
}
