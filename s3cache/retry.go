package s3cache

// retry.go and s3.go are the only files that import the AWS SDK.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// maxAttemptsUnlimited is the SDK's attempt bound when S3Options gives
// none: RetryFor is what ends the retries.
const maxAttemptsUnlimited = 1 << 20

// newRetryer is the SDK's standard retryer (backoff with jitter, no retry
// quota) that also gives up on what retrying cannot heal: an operation
// whose RetryFor is spent, and an https endpoint that speaks plain HTTP.
func newRetryer(opts S3Options) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = opts.MaxAttempts
		o.MaxBackoff = opts.MaxBackoff
		o.RateLimiter = ratelimit.None // never fail a retry for want of tokens
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(final)}, o.Retryables...)
	})
}

// final marks the errors that end the retries.
func final(err error) aws.Ternary {
	var (
		spent *retriesSpentError
		tlsE  *TLSError
	)
	if errors.As(err, &spent) || isSchemeMismatch(err) || errors.As(err, &tlsE) {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// isSchemeMismatch reports whether err says that an https endpoint
// answered in plain HTTP.
func isSchemeMismatch(err error) bool {
	var rh tls.RecordHeaderError
	return errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rh)
}

// retriesSpentError is the last error of an operation that was retried
// for RetryFor.
type retriesSpentError struct {
	err      error
	attempts int
}

func (e *retriesSpentError) Error() string { return e.err.Error() }
func (e *retriesSpentError) Unwrap() error { return e.err }

// attemptsOf returns how many attempts an SDK error took, 0 if unknown.
func attemptsOf(err error) int {
	var spent *retriesSpentError
	var maxed *retry.MaxAttemptsError
	switch {
	case errors.As(err, &spent):
		return spent.attempts
	case errors.As(err, &maxed):
		return maxed.Attempt
	}
	return 0
}

// operation is the retry state of one SDK operation.
type operation struct {
	start    time.Time
	attempts int
	last     error
}

type operationKey struct{}

// retryMiddleware counts the attempts of every operation around the SDK's
// retry loop: before each retry it logs one WARN line naming the request,
// the endpoint, the reason and the attempt; once an operation has been
// retried for RetryFor, its error is made final.
type retryMiddleware struct {
	b *S3Bucket
}

func (m retryMiddleware) add(stack *middleware.Stack) error {
	err := stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("nixbucketOperation",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			start, ok := ctx.Value(retryStartKey{}).(time.Time)
			if !ok {
				start = time.Now()
			}
			return next.HandleFinalize(context.WithValue(ctx, operationKey{}, &operation{start: start}), in)
		}), "Retry", middleware.Before)
	if err != nil {
		return err
	}
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("nixbucketAttempt", m.attempt), "Retry", middleware.After)
}

func (m retryMiddleware) attempt(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	op, ok := ctx.Value(operationKey{}).(*operation)
	if !ok {
		return next.HandleFinalize(ctx, in)
	}
	op.attempts++
	if op.attempts > 1 {
		m.b.logger.WarnContext(ctx, fmt.Sprintf("retrying %s at %s: %s (attempt %d)",
			m.b.describe(ctx, in.Request), m.b.where, reason(op.last), op.attempts))
	}
	out, md, err := next.HandleFinalize(ctx, in)
	if err != nil && ctx.Err() == nil && time.Since(op.start) >= m.b.opts.RetryFor {
		err = &retriesSpentError{err: err, attempts: op.attempts}
	}
	op.last = err
	return out, md, err
}

// describe names a request for a log line: "HEAD nix-cache-info", or the
// operation's name for one on the bucket ("ListObjectsV2").
func (b *S3Bucket) describe(ctx context.Context, r any) string {
	req, ok := r.(*smithyhttp.Request)
	if !ok {
		return awsmiddleware.GetOperationName(ctx)
	}
	key := strings.TrimPrefix(req.URL.Path, "/")
	if b.pathStyle {
		if rest, ok := strings.CutPrefix(key, b.bucket+"/"); ok {
			key = rest
		} else if key == b.bucket {
			key = ""
		}
	}
	if key == "" {
		return req.Method + " " + awsmiddleware.GetOperationName(ctx)
	}
	return req.Method + " " + key
}

// reason says in a few words why an attempt failed.
func reason(err error) string {
	var (
		stall *StallError
		re    *awshttp.ResponseError
		ae    smithy.APIError
		errno syscall.Errno
		tlsE  *TLSError
	)
	switch {
	case err == nil:
		return "retrying"
	case errors.As(err, &tlsE):
		return tlsE.Error()
	case errors.As(err, &stall):
		return stall.Error()
	case errors.As(err, &re) && re.HTTPStatusCode() != 0:
		s := fmt.Sprintf("HTTP %d", re.HTTPStatusCode())
		if errors.As(err, &ae) && ae.ErrorCode() != "" {
			s += " " + ae.ErrorCode()
		}
		return s
	case errors.As(err, &errno):
		return errno.Error()
	}
	return err.Error()
}

// logger returns opts' logger, else slog's default: retry warnings are
// for the user to see.
func (opts S3Options) logger() *slog.Logger {
	if opts.Logger != nil {
		return opts.Logger
	}
	return slog.Default()
}
