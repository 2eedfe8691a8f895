package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// Exit codes, documented in the package comment and the README.
const (
	exitFailure     = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitBadKey      = 4
	exitRemote      = 5
	exitInterrupted = 130
)

// exitError carries an error with the exit code it maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode marks err with an exit code; nil stays nil.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageErrorf is a usage error (exit 2).
func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// exitCode maps an error to the documented exit status.
func exitCode(ctx context.Context, err error) int {
	var (
		ee *exitError
		// urfave/cli reports bad flags through OnUsageError (exit 2); the
		// one error it makes otherwise is help's "No help topic", a
		// cli.ExitCoder (nixbucket makes none).
		help cli.ExitCoder
	)
	switch {
	case errors.As(err, &ee):
		return ee.code
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &help):
		return exitUsage
	}
	return classify(err)
}

// classify maps errors not marked with an exit code to one, by kind: the
// one place where a bucket's failure becomes exit 5, a store's missing
// path exit 3 and a bad key exit 4.
func classify(err error) int {
	var remote *s3cache.RemoteError
	switch {
	case errors.As(err, &remote),
		errors.Is(err, s3cache.ErrAccessDenied), errors.Is(err, s3cache.ErrNoSuchBucket), errors.Is(err, s3cache.ErrUnreachable):
		return exitRemote
	case errors.Is(err, store.ErrNotValid), errors.Is(err, storepath.ErrInvalid), errors.Is(err, store.ErrNoStore):
		return exitNotFound
	case errors.Is(err, signing.ErrInvalidKey):
		return exitBadKey
	}
	return exitFailure
}
