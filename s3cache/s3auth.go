package s3cache

// S3Bucket: the AWS credential chain's errors.

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// credentialsProvider marks the credential chain's errors, so that a
// failure to find credentials is told apart from the server's answers.
type credentialsProvider struct{ aws.CredentialsProvider }

func (p credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	return c, nil
}

// credentialsError is a failure of the AWS credential chain.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "no credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }
