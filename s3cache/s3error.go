package s3cache

// S3Bucket: the SDK's errors, as this package's.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// ErrUnreachable is returned (wrapped) when the S3 endpoint cannot be
// connected to, after the retries.
var ErrUnreachable = errors.New("endpoint unreachable")

// remote returns a RemoteError of the given kind (a sentinel, or nil).
func (b *S3Bucket) remote(kind, cause error, format string, args ...any) error {
	return &RemoteError{Endpoint: b.where, msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// wrap translates an SDK error into this package's errors: "OP KEY: …".
// Everything but a missing key and a cancelled context is a RemoteError.
func (b *S3Bucket) wrap(op, key string, err error) error {
	var (
		code   string
		status int
		ae     smithy.APIError
		re     *awshttp.ResponseError
		ne     *net.OpError
		stall  *StallError
		ce     *credentialsError
	)
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	gaveUp := ""
	if n := attemptsOf(err); n > 1 {
		gaveUp = fmt.Sprintf(" (gave up after %d attempts)", n)
	}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s: %w", op, key, err)
	case errors.As(err, &ce):
		return b.remote(ErrAccessDenied, err,
			"%s %s: no usable AWS credentials for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile= in the URL",
			op, key, b.where)
	case isSchemeMismatch(err):
		return b.remote(ErrUnreachable, err, "%s %s: %s speaks plain HTTP; use http:// in endpoint=", op, key, b.where)
	case code == "NoSuchBucket":
		return b.remote(ErrNoSuchBucket, err, "%s %s: bucket %q does not exist at %s", op, key, b.bucket, b.where)
	case status == http.StatusForbidden || code == "AccessDenied" || code == "InvalidAccessKeyId" ||
		code == "SignatureDoesNotMatch" || code == "XAdminUserNotFound": // versitygw: 404 for an unknown key id
		if code == "" {
			code = "403 Forbidden"
		}
		return b.remote(ErrAccessDenied, err,
			"%s %s: access denied to bucket %q at %s (%s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile and the bucket's permissions",
			op, key, b.bucket, b.where, code)
	case status == http.StatusBadRequest && code == "AuthorizationHeaderMalformed":
		return b.scopeError(op, key, err, code, ae.ErrorMessage(), re)
	case status == http.StatusBadRequest && bodiless(ae, re) && !b.scopeOK.Load():
		// Garage's answer to a HEAD signed for another region: a 400
		// without a body, to the first request (once a request was
		// taken, a 400 is something else).
		return b.scopeError(op, key, err, code, "", re)
	case code == "NoSuchKey" || code == "NotFound" || code == "NoSuchUpload" || status == http.StatusNotFound:
		return fmt.Errorf("%s %s: %w", op, key, ErrNotFound)
	case errors.As(err, &stall):
		return b.remote(ErrUnreachable, err, "%s %s: %s stopped answering: %v%s", op, key, b.where, stall, gaveUp)
	case status == 0 && errors.As(err, &ne):
		return b.remote(ErrUnreachable, err, "%s %s: cannot reach %s: %s%s", op, key, b.where, reason(ne), gaveUp)
	}
	if ae != nil {
		// The server's own words, without the SDK's request and host IDs.
		msg := ae.ErrorMessage()
		if msg == "" {
			msg = http.StatusText(status)
		}
		return b.remote(nil, err, "%s %s in bucket %q at %s: %s (%s, HTTP %d)%s", op, key, b.bucket, b.where, msg, code, status, gaveUp)
	}
	return b.remote(nil, err, "%s %s in bucket %q at %s: %s%s", op, key, b.bucket, b.where, reason(err), gaveUp)
}
