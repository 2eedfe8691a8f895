package narinfo

import (
	"errors"
	"fmt"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

// DefaultCompression is the compression a narinfo means when its
// Compression field is missing or empty.
const DefaultCompression = "bzip2"

// unknownDeriver is what some writers put in Deriver when there is none.
const unknownDeriver = "unknown-deriver"

// NarInfo is the content of one .narinfo file.
type NarInfo struct {
	// StorePath is the full store path, e.g. /nix/store/<hash>-<name>.
	StorePath string
	// URL locates the (compressed) NAR, relative to the cache root,
	// e.g. nar/<filehash>.nar.xz.
	URL string
	// Compression is the compression of the file at URL: xz, zstd, bzip2,
	// none, … Parse never leaves it empty (empty means bzip2).
	Compression string
	// FileHash is the hash of the file at URL, or nil when unknown.
	FileHash *nixhash.Hash
	// FileSize is the size in bytes of the file at URL, or 0 when unknown.
	FileSize uint64
	// NarHash is the hash of the uncompressed NAR.
	NarHash *nixhash.Hash
	// NarSize is the size in bytes of the uncompressed NAR; never 0.
	NarSize uint64
	// References are the base names (<hash>-<name>) of the paths StorePath
	// refers to, sorted; may include StorePath's own base name.
	References []string
	// Deriver is the base name of the .drv that built StorePath, or "".
	Deriver string
	// Sigs are the signatures, "<keyname>:<base64>", sorted.
	Sigs []string
	// CA is the content address ("text:sha256:…", "fixed:r:sha256:…"), or "".
	CA string
	// Extra holds the lines with keys Nix does not know, in file order.
	Extra []Field
}

// Field is one "Key: Value" line of a narinfo.
type Field struct {
	// Key is the text before the first ':'; it never contains ':' or '\n'.
	Key string
	// Value is the text from two bytes after the ':' to the end of the line.
	Value string
}

// Sentinel errors, wrapped in a *ParseError by Parse.
var (
	// ErrSyntax reports a line that is not "Key: value\n".
	ErrSyntax = errors.New("malformed line")
	// ErrMissingField reports a missing required field.
	ErrMissingField = errors.New("missing required field")
	// ErrDuplicateField reports a second References or CA line.
	ErrDuplicateField = errors.New("duplicate field")
	// ErrInvalidValue reports a value that does not parse.
	ErrInvalidValue = errors.New("invalid value")
)

// ParseError is the error Parse returns: where and what.
type ParseError struct {
	// Line is the 1-based line number, or 0 when the error concerns the
	// whole file (a missing field).
	Line int
	// Key is the field concerned, or "" when the line has no key.
	Key string
	// Err is the cause; it wraps one of the sentinel errors.
	Err error
}

// Error implements error.
func (e *ParseError) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("narinfo: %s: %v", e.Key, e.Err)
	case e.Key == "":
		return fmt.Sprintf("narinfo line %d: %v", e.Line, e.Err)
	default:
		return fmt.Sprintf("narinfo line %d: %s: %v", e.Line, e.Key, e.Err)
	}
}

// Unwrap returns the cause.
func (e *ParseError) Unwrap() error { return e.Err }
