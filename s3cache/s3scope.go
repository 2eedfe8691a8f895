package s3cache

// S3Bucket: a signature scope the server refuses (a wrong region=).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrSignatureScope is returned (wrapped) when the server refuses the
// scope of the requests' SigV4 signatures: almost always a region= that
// is not the server's (Garage's is "garage", or its s3_region). It does
// not heal by retrying.
var ErrSignatureScope = errors.New("signature scope refused")

// garageHint is what a bodiless 400 to the bucket's first request says:
// Garage answers a HEAD signed for another region so.
const garageHint = "Garage wants region=garage (or its s3_region)"

// expectingRegion finds the region the server expects in an
// AuthorizationHeaderMalformed message: MinIO's "expecting 'garage'",
// versitygw's and AWS's "expecting \"garage\"" / "expecting 'eu-west-1'".
var expectingRegion = regexp.MustCompile(`expecting ['"]([A-Za-z0-9._-]+)['"]`)

// expectedScope finds it in Garage's "expected: '20250101/garage/s3/aws4_request'".
var expectedScope = regexp.MustCompile(`expected: '[0-9]{8}/([A-Za-z0-9._-]+)/`)

// wantedRegion returns the region an error answer names as the server's:
// from its message, or AWS's x-amz-bucket-region header; "" if none.
func wantedRegion(msg string, re *awshttp.ResponseError) string {
	for _, rx := range []*regexp.Regexp{expectingRegion, expectedScope} {
		if m := rx.FindStringSubmatch(msg); m != nil {
			return m[1]
		}
	}
	if re != nil && re.Response != nil {
		return re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}

// bodiless reports whether an error answer had no body to say what was
// wrong: a HEAD's, or one the SDK could only name by its status.
func bodiless(ae smithy.APIError, re *awshttp.ResponseError) bool {
	if re == nil {
		return false
	}
	if re.Response != nil && re.Response.Request != nil && re.Response.Request.Method == http.MethodHead {
		return true
	}
	if ae == nil || ae.ErrorMessage() == "" {
		return true
	}
	text := http.StatusText(re.HTTPStatusCode())
	return ae.ErrorMessage() == text && ae.ErrorCode() == strings.ReplaceAll(text, " ", "")
}

// scopeError is the error for a 400 that refuses the signature scope:
// code is the server's error code and serverMsg its message, "" when the
// answer had no body (a HEAD's): then, unless a header names the
// region, the line gives Garage's hint.
func (b *S3Bucket) scopeError(op, key string, err error, code, serverMsg string, re *awshttp.ResponseError) error {
	ours := b.region()
	where := fmt.Sprintf("%s %s in bucket %q at %s", op, key, b.bucket, b.where)
	if want := wantedRegion(serverMsg, re); want != "" {
		return b.remote(ErrSignatureScope, err,
			"%s: the server refused the request's signature scope: the server wants region=%s, not region=%s (%s, HTTP 400)",
			where, want, ours, code)
	}
	if serverMsg != "" {
		return b.remote(ErrSignatureScope, err,
			"%s: the server refused the request's signature scope (region=%s): %s (%s, HTTP 400)",
			where, ours, serverMsg, code)
	}
	return b.remote(ErrSignatureScope, err,
		"%s: the server refused the request's signature scope: %s; the request was signed for region=%s (HTTP 400 without a body)",
		where, garageHint, ours)
}

// region is the region the bucket's requests are signed for.
func (b *S3Bucket) region() string {
	if b.url != nil && b.url.Region != "" {
		return b.url.Region
	}
	return DefaultRegion
}

// scopeMiddleware records that the server took a signature of this
// bucket's scope: any answer but 400, 403, 3xx and 5xx says so. Until
// then, a 400 without a body is taken for Garage's answer to a wrong
// region; after, it is something else and keeps its own message.
type scopeMiddleware struct {
	b *S3Bucket
}

func (m scopeMiddleware) add(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("nixbucketScope",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && scopeTaken(resp.StatusCode) {
				m.b.scopeOK.Store(true)
			}
			return out, md, err
		}), middleware.After)
}

// scopeTaken reports whether an answer with this status shows that the
// server checked the signature and took its scope.
func scopeTaken(status int) bool {
	switch {
	case status >= 200 && status < 300:
		return true
	}
	switch status {
	case http.StatusNotModified, http.StatusNotFound, http.StatusConflict,
		http.StatusPreconditionFailed, http.StatusRequestedRangeNotSatisfiable:
		return true
	}
	return false
}
