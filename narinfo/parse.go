package narinfo

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

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

// ParseString parses the narinfo text s; see Parse. Each line goes to its
// key's handler in fields (unknown keys to Extra); then the required
// fields are checked, in fields' order.
func ParseString(s string, opts ...Option) (*NarInfo, error) {
	o := options{storeDir: storepath.DefaultDir()}
	for _, opt := range opts {
		opt(&o)
	}
	o.storeDir = path.Clean(o.storeDir)

	var ni NarInfo
	lastLine := make(map[string]int, len(fields)) // the last line of each known key
	line := 1
	for pos := 0; pos < len(s); {
		key, value, next, err := splitLine(s, pos)
		if err != nil {
			return nil, &ParseError{Line: line, Key: key, Err: err}
		}
		if f, ok := fieldByKey[key]; ok {
			if err := f.parse(&ni, value, o); err != nil {
				return nil, &ParseError{Line: line, Key: key, Err: err}
			}
			lastLine[key] = line
		} else {
			ni.Extra = append(ni.Extra, Field{Key: key, Value: value})
		}
		line += strings.Count(s[pos:next], "\n")
		pos = next
	}

	if ni.Compression == "" {
		ni.Compression = DefaultCompression
	}
	ni.Sigs = sortedSet(ni.Sigs)

	for _, f := range fields {
		if !f.required {
			continue
		}
		l, ok := lastLine[f.key]
		if !ok {
			return nil, &ParseError{Key: f.key, Err: ErrMissingField}
		}
		if f.check == nil {
			continue
		}
		if err := f.check(&ni); err != nil {
			return nil, &ParseError{Line: l, Key: f.key, Err: err}
		}
	}
	return &ni, nil
}

// splitLine splits the line of s starting at pos as Nix does: the key is
// the text before the first ':', the value starts two bytes after it and
// runs to the next '\n'. next is the position after that '\n'. The error,
// wrapping ErrSyntax, comes with the key when there is one.
func splitLine(s string, pos int) (key, value string, next int, err error) {
	colon := strings.IndexByte(s[pos:], ':')
	if colon < 0 || strings.IndexByte(s[pos:pos+colon], '\n') >= 0 {
		return "", "", 0, fmt.Errorf("%w: no ':' on the line", ErrSyntax)
	}
	colon += pos
	key = s[pos:colon]
	start := colon + 2
	eol := -1
	if start <= len(s) {
		eol = strings.IndexByte(s[start:], '\n')
	}
	if eol < 0 {
		return key, "", 0, fmt.Errorf("%w: no newline at the end of the line", ErrSyntax)
	}
	eol += start
	return key, s[start:eol], eol + 1, nil
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
