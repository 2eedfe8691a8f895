package narinfo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/storepath"
)

// field is how ParseString reads the lines of one key.
type field struct {
	key string
	// parse sets ni's field from the value of a line. Its errors wrap
	// ErrInvalidValue (see invalid) or are ErrDuplicateField, for a key
	// that may carry a value once.
	parse func(ni *NarInfo, value string, o options) error
	// required: a narinfo without a line for key is refused.
	required bool
	// check, for a required key, vets the value once all lines are read;
	// its error is reported at the key's last line.
	check func(ni *NarInfo) error
}

// fields are the keys Nix knows (NarInfo::NarInfo in
// src/libstore/nar-info.cc), in its order; a repeated key overwrites
// unless its parse says otherwise.
var fields = []field{
	{key: "StorePath", required: true, parse: func(ni *NarInfo, v string, o options) (err error) {
		ni.StorePath, err = storepath.Parse(o.storeDir, v)
		return invalid(err)
	}},
	{key: "URL", required: true, parse: func(ni *NarInfo, v string, _ options) error {
		ni.URL = v
		return nil
	}, check: func(ni *NarInfo) error {
		if ni.URL == "" {
			return invalid(errors.New("empty"))
		}
		return nil
	}},
	{key: "Compression", parse: func(ni *NarInfo, v string, _ options) error {
		ni.Compression = v
		return nil
	}},
	{key: "FileHash", parse: func(ni *NarInfo, v string, _ options) (err error) {
		ni.FileHash, err = parseHash(v)
		return invalid(err)
	}},
	{key: "FileSize", parse: func(ni *NarInfo, v string, _ options) (err error) {
		ni.FileSize, err = parseSize(v)
		return err
	}},
	{key: "NarHash", required: true, parse: func(ni *NarInfo, v string, _ options) (err error) {
		ni.NarHash, err = parseHash(v)
		return invalid(err)
	}},
	{key: "NarSize", required: true, parse: func(ni *NarInfo, v string, _ options) (err error) {
		ni.NarSize, err = parseSize(v)
		return err
	}, check: func(ni *NarInfo) error {
		if ni.NarSize == 0 {
			return invalid(errors.New("must be positive"))
		}
		return nil
	}},
	{key: "References", parse: parseReferences},
	{key: "Deriver", parse: func(ni *NarInfo, v string, _ options) error {
		if v == unknownDeriver {
			return nil
		}
		if err := storepath.CheckBase(v); err != nil {
			return invalid(err)
		}
		ni.Deriver = v
		return nil
	}},
	{key: "Sig", parse: func(ni *NarInfo, v string, _ options) error {
		ni.Sigs = append(ni.Sigs, v)
		return nil
	}},
	{key: "CA", parse: func(ni *NarInfo, v string, _ options) (err error) {
		if v == "" {
			return nil
		}
		if ni.CA != "" {
			return ErrDuplicateField
		}
		ni.CA, err = parseCA(v)
		return invalid(err)
	}},
}

// fieldByKey indexes fields by key.
var fieldByKey = func() map[string]*field {
	m := make(map[string]*field, len(fields))
	for i := range fields {
		m[fields[i].key] = &fields[i]
	}
	return m
}()

// parseReferences reads a References line: base names separated by
// spaces. A line after one with references is a duplicate, even an empty
// one, as in Nix.
func parseReferences(ni *NarInfo, v string, _ options) error {
	if ni.References != nil {
		return ErrDuplicateField
	}
	refs := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' })
	for _, r := range refs {
		if err := storepath.CheckBase(r); err != nil {
			return invalid(err)
		}
	}
	ni.References = sortedSet(refs)
	return nil
}

// invalid wraps a value's error in ErrInvalidValue; nil stays nil.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidValue, err)
}

// parseSize parses a size in bytes: plain decimal.
func parseSize(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalid(fmt.Errorf("%q is not a size in bytes", s))
	}
	return n, nil
}

// parseHash parses a hash with its algorithm, in any encoding Nix accepts
// (Hash::parseAnyPrefixed): "<algo>:<hex|nix32|base64>" or SRI.
func parseHash(s string) (*nixhash.Hash, error) {
	h, err := nixhash.ParseAny(s, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing hash %q: %w", s, err)
	}
	// NewHash checks the digest's length, which ParseAny does not for
	// unpadded base64 (44 characters can decode to 33 bytes).
	hash, err := nixhash.NewHash(h.Algo(), h.Digest())
	if err != nil {
		return nil, fmt.Errorf("parsing hash %q: %w", s, err)
	}
	return hash, nil
}
