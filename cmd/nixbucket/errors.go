package main

import (
	"errors"

	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
)

// classify maps errors not marked with an exit code to one, by kind.
func classify(err error) int {
	switch {
	case errors.Is(err, store.ErrNotValid), errors.Is(err, store.ErrBadPath), errors.Is(err, store.ErrNoStore):
		return exitNotFound
	case errors.Is(err, signing.ErrInvalidKey):
		return exitBadKey
	}
	return exitFailure
}
