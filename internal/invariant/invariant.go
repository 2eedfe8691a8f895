// Package invariant checks, for tests, the promise every nixbucket command
// keeps whatever fails or is killed: the bucket never holds a narinfo
// whose NAR or references are missing.
package invariant

import (
	"context"
	"errors"
	"fmt"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
)

// NarInfo returns what is wrong with the narinfo at key: it does not
// parse, its NAR is missing or has another size than FileSize, a
// reference (other than itself) has no narinfo. The error is for what
// could not be read, the narinfo itself included (wrapping
// s3cache.ErrNotFound if it is gone).
func NarInfo(ctx context.Context, b s3cache.Bucket, key string) ([]string, error) {
	data, err := s3cache.ReadSmall(ctx, b, key, 1<<20)
	if err != nil {
		return nil, err
	}
	ni, err := narinfo.ParseString(string(data))
	if err != nil {
		return []string{"does not parse: " + err.Error()}, nil
	}
	var problems []string
	st, err := b.Stat(ctx, ni.URL)
	switch {
	case errors.Is(err, s3cache.ErrNotFound):
		problems = append(problems, "its NAR "+ni.URL+" is missing")
	case err != nil:
		return nil, err
	case ni.FileSize != 0 && uint64(st.Size) != ni.FileSize:
		problems = append(problems, fmt.Sprintf("its NAR %s has %d bytes, the narinfo says %d", ni.URL, st.Size, ni.FileSize))
	}
	for _, r := range ni.References {
		rk := layout.NarInfoKeyOf(r)
		if rk == key {
			continue
		}
		if _, err := b.Stat(ctx, rk); errors.Is(err, s3cache.ErrNotFound) {
			problems = append(problems, "its reference "+r+" has no narinfo")
		} else if err != nil {
			return nil, err
		}
	}
	return problems, nil
}
