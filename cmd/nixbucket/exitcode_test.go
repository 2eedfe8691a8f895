package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestExitCodeClasses checks that the one mapping from error classes to
// exit codes knows every class, however deeply the error is wrapped.
func TestExitCodeClasses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{&s3cache.RemoteError{Endpoint: "http://127.0.0.1:1"}, exitRemote},
		{s3cache.ErrAccessDenied, exitRemote},
		{s3cache.ErrNoSuchBucket, exitRemote},
		{s3cache.ErrUnreachable, exitRemote},
		{s3cache.ErrNotFound, exitFailure},
		{store.ErrNotValid, exitNotFound},
		{storepath.ErrInvalid, exitNotFound},
		{store.ErrNoStore, exitNotFound},
		{signing.ErrInvalidKey, exitBadKey},
		{context.Canceled, exitInterrupted},
		{fmt.Errorf("plain"), exitFailure},
		{withCode(exitUsage, s3cache.ErrUnreachable), exitUsage},
	} {
		wrapped := fmt.Errorf("pushing: %w", fmt.Errorf("opening: %w", tc.err))
		if got := exitCode(context.Background(), wrapped); got != tc.code {
			t.Errorf("exitCode(%v) = %d, want %d", wrapped, got, tc.code)
		}
	}
}
