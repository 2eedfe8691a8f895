// Package httpcache is an s3cache.Bucket over the HTTP binary-cache
// protocol Nix speaks (http-binary-cache-store.cc): Stat is a HEAD, Get a
// GET, Put a PUT (streamed with chunked encoding when the length is not
// known), as `nixbucket serve --accept-push` accepts them. It cannot list
// (List returns an error wrapping ErrUnsupported: push then checks
// presence with HEADs) and never deletes.
//
// Requests carry the push token as the password of HTTP basic
// authentication. They have the S3 client's deadlines (connect timeout,
// stall timeout, RetryFor: s3cache.S3Options), and transient failures
// (5xx, 429, broken connections, stalls) are retried with backoff, each
// retry logged on stderr, as long as the request's body can be sent again:
// a PUT of a stream (a NAR) that fails so after part of it was sent is not
// retried, and its error is a ResendError, which tells the caller (push)
// that it may send the stream again from the start.
package httpcache
