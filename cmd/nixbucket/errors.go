package main

import (
	"errors"
	"net/url"
	"regexp"

	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
)

// classify maps errors not marked with an exit code to one, by kind: the
// one place where a bucket's failure becomes exit 5.
func classify(err error) int {
	var remote *s3cache.RemoteError
	switch {
	case errors.As(err, &remote),
		errors.Is(err, s3cache.ErrAccessDenied), errors.Is(err, s3cache.ErrNoSuchBucket), errors.Is(err, s3cache.ErrUnreachable):
		return exitRemote
	case errors.Is(err, store.ErrNotValid), errors.Is(err, store.ErrBadPath), errors.Is(err, store.ErrNoStore):
		return exitNotFound
	case errors.Is(err, signing.ErrInvalidKey):
		return exitBadKey
	}
	return exitFailure
}

// secretKeyParam matches a secret-key= (or secret-keys=) parameter of a
// store URL inside a message, up to the end of its value.
var secretKeyParam = regexp.MustCompile(`(secret-keys?=)([^&"'\s]*)`)

// base64Run matches 43 base64 letters and digits in a row, as in key text
// (and hardly ever in a file name).
var base64Run = regexp.MustCompile(`[A-Za-z0-9+]{43}`)

// redactKeyText replaces the value of every secret-key= parameter in msg
// that looks like key text rather than a file name (signing.SafeKeyPath, or
// a long base64 run), raw or URL-decoded, so that an error quoting a store
// URL (an unknown parameter, a bad escape) cannot show a key given in the
// wrong place.
func redactKeyText(msg string) string {
	return secretKeyParam.ReplaceAllStringFunc(msg, func(m string) string {
		sub := secretKeyParam.FindStringSubmatch(m)
		values := []string{sub[2]}
		if v, err := url.QueryUnescape(sub[2]); err == nil {
			values = append(values, v)
		}
		for _, v := range values {
			if signing.SafeKeyPath(v) != v || base64Run.MatchString(v) {
				return sub[1] + "(key text, not shown)"
			}
		}
		return m
	})
}
