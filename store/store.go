package store

import (
	"context"
	"errors"
	"time"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

// ErrNotValid is returned (wrapped) when a path is not valid in the store.
var ErrNotValid = errors.New("path is not valid in the store")

// ErrNoStore is returned (wrapped) when there is no Nix store to read: no
// daemon socket and no database.
var ErrNoStore = errors.New("no Nix store found")

// ErrUnsupportedStore is returned (wrapped) by Open when NIX_REMOTE names a
// store it cannot read (ssh://, local?root=…, …).
var ErrUnsupportedStore = errors.New("unsupported store")

// PathInfo is what the store records about one valid store path.
type PathInfo struct {
	// Path is the full store path, e.g. /nix/store/<hash>-<name>.
	Path string
	// Deriver is the full path of the .drv that built Path, or "".
	Deriver string
	// NarHash is the SHA-256 of the path's NAR serialisation.
	NarHash *nixhash.Hash
	// NarSize is the length of the NAR serialisation in bytes.
	NarSize uint64
	// References are the full store paths Path refers to, sorted; may
	// include Path itself.
	References []string
	// RegistrationTime is when the path became valid.
	RegistrationTime time.Time
	// Ultimate reports whether the path was built locally.
	Ultimate bool
	// Signatures are "keyname:base64" signatures, as recorded.
	Signatures []string
	// CA is the content address ("fixed:r:sha256:…", "text:sha256:…") or "".
	CA string
}

// Store is the read-only view of a Nix store that nixbucket needs.
// Implementations are safe for concurrent use.
type Store interface {
	// Dir is the store directory, e.g. /nix/store.
	Dir() string
	// QueryPathInfo returns the info of a valid path; an error wrapping
	// ErrNotValid when the path is not valid.
	QueryPathInfo(ctx context.Context, path string) (*PathInfo, error)
	// QueryValidPaths returns the subset of paths that are valid, in input order.
	QueryValidPaths(ctx context.Context, paths []string) ([]string, error)
	// QueryDerivationOutputs maps each output name of the derivation drvPath
	// to its statically known output path (valid or not). Floating
	// content-addressed outputs are absent.
	QueryDerivationOutputs(ctx context.Context, drvPath string) (map[string]string, error)
	// Close releases connections and database handles.
	Close() error
}
