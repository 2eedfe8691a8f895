package s3cache

// S3Bucket: the bucket's lifecycle rule that aborts incomplete multipart
// uploads.

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// AbortMultipartRuleID is the ID of the lifecycle rule that
// EnsureAbortMultipartRule adds.
const AbortMultipartRuleID = "nixbucket-abort-multipart"

// RuleChange is what EnsureAbortMultipartRule did.
type RuleChange int

// What EnsureAbortMultipartRule did.
const (
	// RuleKept: a rule already aborts the uploads; nothing was written.
	RuleKept RuleChange = iota
	// RuleAdded: the rule was added to the bucket's other rules.
	RuleAdded
	// RuleUpdated: the rule was there with other settings; it was
	// replaced, the other rules kept.
	RuleUpdated
)

// AbortRule is the lifecycle rule that aborts a bucket's incomplete
// multipart uploads, and what EnsureAbortMultipartRule did to it.
type AbortRule struct {
	// ID is the rule's ID: AbortMultipartRuleID, or the ID of a rule of
	// the bucket's own that already did the job.
	ID string
	// Days is its DaysAfterInitiation.
	Days int
	// Change is what was done.
	Change RuleChange
	// WasDays is, for RuleUpdated, the days the rule had before (0 if it
	// aborted no upload, or was disabled or filtered).
	WasDays int
}

// Lifecycler is implemented by buckets whose server keeps lifecycle rules
// (S3Bucket); file:// and memory buckets are not.
type Lifecycler interface {
	// EnsureAbortMultipartRule makes the bucket's lifecycle configuration
	// hold an enabled rule, for the whole bucket, that aborts multipart
	// uploads still incomplete days after they began. It reads the
	// configuration first and writes it back with the rule
	// AbortMultipartRuleID added (or replaced), every other rule as it
	// was; it writes nothing when such a rule (the bucket's own included)
	// is already there. A server that does not implement lifecycle, or
	// refuses the rule, gives a *LifecycleError.
	EnsureAbortMultipartRule(ctx context.Context, days int) (AbortRule, error)
}

var _ Lifecycler = (*S3Bucket)(nil)

// ErrLifecycleNotSupported is returned (wrapped, in a LifecycleError) by
// EnsureAbortMultipartRule when the server does not implement bucket
// lifecycle configuration (501 NotImplemented, as versitygw answers).
var ErrLifecycleNotSupported = errors.New("bucket lifecycle not supported")

// LifecycleError is the error of EnsureAbortMultipartRule when the server
// will not keep the rule: it does not implement lifecycle
// (ErrLifecycleNotSupported), or answers the read or the write with a 4xx
// (MinIO refuses a rule whose only action is
// AbortIncompleteMultipartUpload with 400 InvalidArgument; a key without
// the permission gets 403 AccessDenied). Nothing was changed.
type LifecycleError struct {
	// Code and Message are the server's error code and message.
	Code, Message string
	// Status is the HTTP status.
	Status int
	err    error
}

// Error is the underlying RemoteError's line, naming the endpoint.
func (e *LifecycleError) Error() string { return e.err.Error() }

// Unwrap returns the RemoteError (and so ErrLifecycleNotSupported, if
// that is its kind).
func (e *LifecycleError) Unwrap() error { return e.err }

// EnsureAbortMultipartRule implements Lifecycler with
// GetBucketLifecycleConfiguration and, if needed,
// PutBucketLifecycleConfiguration (with Content-MD5, which S3 requires).
func (b *S3Bucket) EnsureAbortMultipartRule(ctx context.Context, days int) (AbortRule, error) {
	if days < 1 {
		return AbortRule{}, fmt.Errorf("aborting incomplete multipart uploads after %d days: want at least 1", days)
	}
	got, err := b.client.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &b.bucket})
	var (
		rules   []types.LifecycleRule
		minSize types.TransitionDefaultMinimumObjectSize
	)
	switch {
	case err == nil:
		rules, minSize = got.Rules, got.TransitionDefaultMinimumObjectSize
	case errorCode(err) == "NoSuchLifecycleConfiguration":
	default:
		return AbortRule{}, b.lifecycleError("reading", err)
	}
	merged, rule := mergeAbortRule(rules, days)
	if rule.Change == RuleKept {
		return rule, nil
	}
	_, err = b.client.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket:                             &b.bucket,
		LifecycleConfiguration:             &types.BucketLifecycleConfiguration{Rules: merged},
		TransitionDefaultMinimumObjectSize: minSize,
	}, s3.WithAPIOptions(addContentMD5))
	if err != nil {
		return AbortRule{}, b.lifecycleError("writing", err)
	}
	return rule, nil
}

// lifecycleError is wrap's error, in a LifecycleError if the server
// does not implement lifecycle or refused with a 4xx.
func (b *S3Bucket) lifecycleError(op string, err error) error {
	var (
		ae smithy.APIError
		re *awshttp.ResponseError
	)
	werr := b.wrap(op, "the lifecycle configuration", err)
	if !errors.As(err, &ae) || !errors.As(err, &re) {
		return werr
	}
	status := re.HTTPStatusCode()
	switch {
	case status == http.StatusNotImplemented || ae.ErrorCode() == "NotImplemented":
		werr = b.remote(ErrLifecycleNotSupported, err, "%s the lifecycle configuration in bucket %q at %s: %s (%s, HTTP %d)",
			op, b.bucket, b.where, ae.ErrorMessage(), ae.ErrorCode(), status)
	case status >= 400 && status < 500 && !errors.Is(werr, ErrNoSuchBucket) && !errors.Is(werr, ErrSignatureScope):
	default:
		return werr
	}
	return &LifecycleError{Code: ae.ErrorCode(), Message: ae.ErrorMessage(), Status: status, err: werr}
}

// errorCode is the S3 error code of an SDK error, "" if none.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// mergeAbortRule returns rules with an enabled whole-bucket rule
// AbortMultipartRuleID that aborts incomplete uploads after days, and
// what that took: RuleKept (rules need no change, the returned slice is
// nil) when that rule, or another enabled whole-bucket rule that aborts
// uploads, is already there; else ours is replaced in place or appended.
// The other rules are never changed.
func mergeAbortRule(rules []types.LifecycleRule, days int) ([]types.LifecycleRule, AbortRule) {
	ours := types.LifecycleRule{
		ID:                             aws.String(AbortMultipartRuleID),
		Status:                         types.ExpirationStatusEnabled,
		Filter:                         &types.LifecycleRuleFilter{Prefix: aws.String("")},
		AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(int32(days))},
	}
	for i, r := range rules {
		if aws.ToString(r.ID) != AbortMultipartRuleID {
			continue
		}
		if d := abortDays(r); d == days {
			return nil, AbortRule{ID: AbortMultipartRuleID, Days: days, Change: RuleKept}
		}
		out := append([]types.LifecycleRule(nil), rules...)
		out[i] = ours
		return out, AbortRule{ID: AbortMultipartRuleID, Days: days, Change: RuleUpdated, WasDays: abortDays(r)}
	}
	for _, r := range rules {
		if d := abortDays(r); d > 0 {
			return nil, AbortRule{ID: aws.ToString(r.ID), Days: d, Change: RuleKept}
		}
	}
	out := append(append([]types.LifecycleRule(nil), rules...), ours)
	return out, AbortRule{ID: AbortMultipartRuleID, Days: days, Change: RuleAdded}
}

// abortDays returns after how many days r aborts incomplete multipart
// uploads in the whole bucket; 0 if it does not (disabled, filtered, or
// without that action).
func abortDays(r types.LifecycleRule) int {
	//lint:ignore SA1019 a rule written before Filter may still carry the old Prefix
	legacyPrefix := aws.ToString(r.Prefix)
	if r.Status != types.ExpirationStatusEnabled || r.AbortIncompleteMultipartUpload == nil ||
		legacyPrefix != "" || !wholeBucket(r.Filter) {
		return 0
	}
	return int(aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation))
}

// wholeBucket reports whether a rule's filter selects every object.
func wholeBucket(f *types.LifecycleRuleFilter) bool {
	return f == nil || (aws.ToString(f.Prefix) == "" && f.Tag == nil && f.And == nil &&
		f.ObjectSizeGreaterThan == nil && f.ObjectSizeLessThan == nil)
}
