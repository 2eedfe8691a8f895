package narinfo

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/nixbucket/nixbucket/storepath"
)

// Option configures Parse.
type Option func(*options)

type options struct {
	storeDir string
}

// WithStoreDir sets the store directory StorePath must lie in (default
// storepath.DefaultDir()).
func WithStoreDir(dir string) Option {
	return func(o *options) { o.storeDir = dir }
}

// Parse reads a narinfo from r and parses it as Nix does (see the package
// documentation). Errors from the content are *ParseError values wrapping
// one of ErrSyntax, ErrMissingField, ErrDuplicateField or ErrInvalidValue.
func Parse(r io.Reader, opts ...Option) (*NarInfo, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading narinfo: %w", err)
	}
	return ParseString(string(b), opts...)
}

// ParseString parses the narinfo text s; see Parse.
func ParseString(s string, opts ...Option) (*NarInfo, error) {
	o := options{storeDir: storepath.DefaultDir()}
	for _, opt := range opts {
		opt(&o)
	}
	storeDir := path.Clean(o.storeDir)

	var (
		ni                                    NarInfo
		haveRefs                              bool // a References line with a non-empty list
		pathLine, urlLine, hashLine, sizeLine int
	)
	line := 1
	for pos := 0; pos < len(s); {
		colon := strings.IndexByte(s[pos:], ':')
		if colon < 0 || strings.IndexByte(s[pos:pos+colon], '\n') >= 0 {
			return nil, &ParseError{Line: line, Err: fmt.Errorf("%w: no ':' on the line", ErrSyntax)}
		}
		colon += pos
		key := s[pos:colon]
		start := colon + 2
		eol := -1
		if start <= len(s) {
			eol = strings.IndexByte(s[start:], '\n')
		}
		if eol < 0 {
			return nil, &ParseError{Line: line, Key: key, Err: fmt.Errorf("%w: no newline at the end of the line", ErrSyntax)}
		}
		eol += start
		value := s[start:eol]

		bad := func(format string, args ...any) error {
			return &ParseError{Line: line, Key: key, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...)}
		}
		var err error
		switch key {
		case "StorePath":
			if ni.StorePath, err = storepath.Parse(storeDir, value); err != nil {
				return nil, bad("%w", err)
			}
			pathLine = line
		case "URL":
			ni.URL = value
			urlLine = line
		case "Compression":
			ni.Compression = value
		case "FileHash":
			if ni.FileHash, err = parseHash(value); err != nil {
				return nil, bad("%w", err)
			}
		case "FileSize":
			if ni.FileSize, err = strconv.ParseUint(value, 10, 64); err != nil {
				return nil, bad("%q is not a size in bytes", value)
			}
		case "NarHash":
			if ni.NarHash, err = parseHash(value); err != nil {
				return nil, bad("%w", err)
			}
			hashLine = line
		case "NarSize":
			if ni.NarSize, err = strconv.ParseUint(value, 10, 64); err != nil {
				return nil, bad("%q is not a size in bytes", value)
			}
			sizeLine = line
		case "References":
			if haveRefs {
				return nil, &ParseError{Line: line, Key: key, Err: ErrDuplicateField}
			}
			refs := strings.FieldsFunc(value, func(r rune) bool { return r == ' ' })
			for _, r := range refs {
				if err := storepath.CheckBase(r); err != nil {
					return nil, bad("%w", err)
				}
			}
			ni.References = sortedSet(refs)
			haveRefs = len(refs) > 0
		case "Deriver":
			if value != unknownDeriver {
				if err := storepath.CheckBase(value); err != nil {
					return nil, bad("%w", err)
				}
				ni.Deriver = value
			}
		case "Sig":
			ni.Sigs = append(ni.Sigs, value)
		case "CA":
			if value == "" {
				break
			}
			if ni.CA != "" {
				return nil, &ParseError{Line: line, Key: key, Err: ErrDuplicateField}
			}
			if ni.CA, err = parseCA(value); err != nil {
				return nil, bad("%w", err)
			}
		default:
			ni.Extra = append(ni.Extra, Field{Key: key, Value: value})
		}
		line += strings.Count(s[pos:eol+1], "\n")
		pos = eol + 1
	}

	if ni.Compression == "" {
		ni.Compression = DefaultCompression
	}
	ni.Sigs = sortedSet(ni.Sigs)

	missing := func(key string) error { return &ParseError{Key: key, Err: ErrMissingField} }
	switch {
	case pathLine == 0:
		return nil, missing("StorePath")
	case urlLine == 0:
		return nil, missing("URL")
	case ni.URL == "":
		return nil, &ParseError{Line: urlLine, Key: "URL", Err: fmt.Errorf("%w: empty", ErrInvalidValue)}
	case hashLine == 0:
		return nil, missing("NarHash")
	case sizeLine == 0:
		return nil, missing("NarSize")
	case ni.NarSize == 0:
		return nil, &ParseError{Line: sizeLine, Key: "NarSize", Err: fmt.Errorf("%w: must be positive", ErrInvalidValue)}
	}
	return &ni, nil
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

// sortedSet sorts s and drops duplicates, as Nix's std::set does; it
// returns nil for an empty set.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
