package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/signing"
)

// TestWrongRegion runs the commands that open a bucket with a URL signed
// for another region than the server's ("garage", as Garage's): each
// fails at once (exit 5, no retry) with one line that says which region
// the server wants, and shows no secret.
func TestWrongRegion(t *testing.T) {
	t.Parallel()
	paths := nixtest.Build(t, nixtest.Sample(t, 1, "wrong-region"), "lib")
	key, err := signing.GenerateSecretKey("wrong-region-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
			for _, url := range []string{
				strings.Replace(srv.URL, "region=garage", "region=us-east-1", 1),
				strings.Replace(srv.URL, "&region=garage", "", 1), // us-east-1 too
			} {
				for _, tc := range []struct {
					args []string
					head bool // the first request is a HEAD
				}{
					{[]string{"push", "--cache", url, paths[0]}, false},
					{[]string{"verify", "--cache", url}, true},
					{[]string{"stats", "--cache", url}, true},
					{[]string{"init", "--cache", url}, false},
					{[]string{"gc", "--cache", url, "--dry-run"}, true},
					{[]string{"serve", "--cache", url, "--listen", "127.0.0.1:0"}, true},
				} {
					args := tc.args
					code, stdout, stderr := runBin(t, env, args...)
					t.Logf("%s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr))
					if code != exitRemote {
						t.Errorf("%s: exit %d, want %d", strings.Join(args, " "), code, exitRemote)
					}
					oneErrorLine(t, stderr)
					// The server's word where its answer has a body (or,
					// as MinIO's and AWS's to a HEAD, an
					// x-amz-bucket-region header); else Garage's hint.
					want := "the server refused the request's signature scope: the server wants region=garage, not region=us-east-1"
					if tc.head && kind == s3test.VersityGW {
						want = "the server refused the request's signature scope: Garage wants region=garage (or its s3_region); the request was signed for region=us-east-1"
					}
					if !strings.Contains(stderr, want) {
						t.Errorf("%s: stderr %q does not say %q", strings.Join(args, " "), stderr, want)
					}
					if strings.Contains(stderr, "retrying") || stdout != "" || strings.Contains(stderr+stdout, srv.SecretKey) {
						t.Errorf("%s: retried, printed on stdout or showed the secret: %q %q", strings.Join(args, " "), stdout, stderr)
					}
				}
			}
		})
	}
}

// TestInitLifecycle checks init's lifecycle rule against what each real
// server does: versitygw has no bucket lifecycle (NotImplemented); MinIO
// has lifecycle but refuses a rule whose only action is
// AbortIncompleteMultipartUpload (400 InvalidArgument). Either way init
// succeeds, says so in one line, and leaves the bucket's own rules as
// they were; --no-lifecycle asks nothing; a file:// cache has no
// lifecycle to speak of.
func TestInitLifecycle(t *testing.T) {
	t.Parallel()
	userRule := types.LifecycleRule{
		ID:         aws.String("user-tmp"),
		Status:     types.ExpirationStatusEnabled,
		Filter:     &types.LifecycleRuleFilter{Prefix: aws.String("tmp/")},
		Expiration: &types.LifecycleExpiration{Days: aws.Int32(3)},
	}
	for _, tc := range []struct {
		kind  string
		rules []types.LifecycleRule // the bucket's own, set before init
		says  string
	}{
		{s3test.VersityGW, nil, "the server does not support bucket lifecycle (NotImplemented): skipped; run gc to abort old uploads"},
		{s3test.MinIO, nil, "the server refused lifecycle rule nixbucket-abort-multipart (InvalidArgument: "},
		{s3test.MinIO, []types.LifecycleRule{userRule}, "the server refused lifecycle rule nixbucket-abort-multipart (InvalidArgument: "},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, tc.kind)
			client := sdkClient(srv)
			ctx := t.Context()
			if tc.rules != nil {
				_, err := client.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
					Bucket: &srv.Bucket, LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: tc.rules},
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			ready := "cache " + srv.URL + " is ready\n"
			for run := range 2 { // a second init changes nothing and says the same
				code, stdout, stderr := runBin(t, creds(srv), "init", "--cache", srv.URL)
				t.Logf("init #%d: exit %d: %q %q", run+1, code, stdout, stderr)
				rest, ok := strings.CutPrefix(stdout, ready)
				if code != 0 || !ok || !strings.HasPrefix(rest, tc.says) || !strings.HasSuffix(rest, ": skipped; run gc to abort old uploads\n") ||
					strings.Count(rest, "\n") != 1 || stderr != "" {
					t.Errorf("init #%d: exit %d, stdout %q, stderr %q; want exit 0 and %q", run+1, code, stdout, stderr, tc.says)
				}
				if got := lifecycleRules(t, client, srv.Bucket); !sameRules(got, tc.rules) {
					t.Errorf("init #%d: the bucket's lifecycle rules are %v, want %v", run+1, ruleIDs(got), ruleIDs(tc.rules))
				}
			}
			if code, stdout, stderr := runBin(t, creds(srv), "init", "--cache", srv.URL, "--no-lifecycle"); code != 0 || stdout != ready {
				t.Errorf("init --no-lifecycle: exit %d, %q %q; want %q", code, stdout, stderr, ready)
			}
			if code, _, stderr := runBin(t, creds(srv), "init", "--cache", srv.URL, "--abort-multipart-days", "0"); code != exitUsage {
				t.Errorf("init --abort-multipart-days 0: exit %d, want %d: %s", code, exitUsage, stderr)
			}
		})
	}
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		url := "file://" + t.TempDir()
		if code, stdout, stderr := runBin(t, nil, "init", "--cache", url); code != 0 || stdout != "cache "+url+" is ready\n" {
			t.Errorf("init on file://: exit %d, %q %q; want only the ready line", code, stdout, stderr)
		}
	})
}

// sdkClient is an SDK client for srv, to look at what nixbucket does not
// show: the bucket's lifecycle configuration.
func sdkClient(srv *s3test.Server) *s3.Client {
	return s3.New(s3.Options{
		Region:       s3test.Region,
		BaseEndpoint: aws.String(srv.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
}

// lifecycleRules returns the bucket's lifecycle rules: none when it has no
// configuration or the server does not implement lifecycle.
func lifecycleRules(t *testing.T, client *s3.Client, bucket string) []types.LifecycleRule {
	t.Helper()
	out, err := client.GetBucketLifecycleConfiguration(context.Background(), &s3.GetBucketLifecycleConfigurationInput{Bucket: &bucket})
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchLifecycleConfiguration" || ae.ErrorCode() == "NotImplemented") {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.Rules
}

// sameRules compares rules by ID, status, prefix and actions.
func sameRules(a, b []types.LifecycleRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if aws.ToString(x.ID) != aws.ToString(y.ID) || x.Status != y.Status ||
			filterPrefix(x) != filterPrefix(y) || expirationDays(x) != expirationDays(y) || abortAfter(x) != abortAfter(y) {
			return false
		}
	}
	return true
}

func filterPrefix(r types.LifecycleRule) string {
	if r.Filter == nil {
		//lint:ignore SA1019 a rule without Filter may carry the old Prefix
		return aws.ToString(r.Prefix)
	}
	return aws.ToString(r.Filter.Prefix)
}

func expirationDays(r types.LifecycleRule) int32 {
	if r.Expiration == nil {
		return 0
	}
	return aws.ToInt32(r.Expiration.Days)
}

func abortAfter(r types.LifecycleRule) int32 {
	if r.AbortIncompleteMultipartUpload == nil {
		return 0
	}
	return aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation)
}

func ruleIDs(rules []types.LifecycleRule) []string {
	var ids []string
	for _, r := range rules {
		ids = append(ids, aws.ToString(r.ID))
	}
	return ids
}
