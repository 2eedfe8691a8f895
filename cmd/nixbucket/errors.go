package main

import (
	"errors"

	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// classify maps errors not marked with an exit code to one, by kind: the
// one place where a bucket's failure becomes exit 5.
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
