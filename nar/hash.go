package nar

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

// ErrMismatch is returned (wrapped, as a *MismatchError) when a NAR's hash or
// size differs from what was expected.
var ErrMismatch = errors.New("NAR hash mismatch")

// Hasher is an io.Writer that computes the SHA-256 and the length of the
// bytes written to it: a NAR's NarHash and NarSize. Its Write never fails.
// The zero value is not usable; call NewHasher.
type Hasher struct {
	h hash.Hash
	n uint64
}

// NewHasher returns a Hasher that has seen no bytes.
func NewHasher() *Hasher { return &Hasher{h: sha256.New()} }

// Write adds p to the hash and the count.
func (h *Hasher) Write(p []byte) (int, error) {
	h.h.Write(p)
	h.n += uint64(len(p))
	return len(p), nil
}

// Size returns the number of bytes written so far.
func (h *Hasher) Size() uint64 { return h.n }

// Hash returns the SHA-256 of the bytes written so far.
func (h *Hasher) Hash() *nixhash.Hash {
	return nixhash.MustNewHash(nixhash.SHA256, h.h.Sum(nil))
}

// Verify compares what was written with the hash and size the store records
// for path (a NarHash, which must be SHA-256, and a NarSize). On a difference
// it returns a *MismatchError naming path.
func (h *Hasher) Verify(path string, wantHash *nixhash.Hash, wantSize uint64) error {
	if wantHash == nil || wantHash.Algo() != nixhash.SHA256 {
		return fmt.Errorf("verifying NAR of %s: the expected hash is not a SHA-256", path)
	}
	got := h.Hash()
	if string(got.Digest()) == string(wantHash.Digest()) && h.n == wantSize {
		return nil
	}
	return &MismatchError{Path: path, Hash: got, Size: h.n, WantHash: wantHash, WantSize: wantSize}
}

// MismatchError reports a NAR whose hash or size is not what the store
// records: the path's contents on disk changed since it was registered, or
// the store database is wrong. It wraps ErrMismatch.
type MismatchError struct {
	// Path is the store path that was dumped.
	Path string
	// Hash and Size are what the dump produced.
	Hash *nixhash.Hash
	Size uint64
	// WantHash and WantSize are what the store records.
	WantHash *nixhash.Hash
	WantSize uint64
}

// Error says which path mismatched and how, hashes in Nix32 as in a narinfo.
func (e *MismatchError) Error() string {
	got, want := formatHash(e.Hash), formatHash(e.WantHash)
	if got == want {
		return fmt.Sprintf("NAR of %s: size %d does not match the store's %d", e.Path, e.Size, e.WantSize)
	}
	if e.Size != e.WantSize {
		return fmt.Sprintf("NAR of %s: hash %s (%d bytes) does not match the store's %s (%d bytes)",
			e.Path, got, e.Size, want, e.WantSize)
	}
	return fmt.Sprintf("NAR of %s: hash %s does not match the store's %s", e.Path, got, want)
}

func formatHash(h *nixhash.Hash) string {
	if h == nil || h.Algo() != nixhash.SHA256 {
		return "(no SHA-256)"
	}
	return h.Format(nixhash.NixBase32, true)
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// HashPath dumps path and returns its NarHash and NarSize, without keeping the
// NAR.
func HashPath(ctx context.Context, path string) (*nixhash.Hash, uint64, error) {
	h := NewHasher()
	if _, err := Dump(ctx, h, path); err != nil {
		return nil, 0, err
	}
	return h.Hash(), h.Size(), nil
}

// VerifyPath dumps path to w (which may be io.Discard) while hashing it, and
// returns a *MismatchError if the NAR's hash or size differs from wantHash
// and wantSize. w has received the whole NAR even then; a caller uploading
// it must discard the upload on error.
func VerifyPath(ctx context.Context, w io.Writer, path string, wantHash *nixhash.Hash, wantSize uint64) error {
	h := NewHasher()
	if _, err := Dump(ctx, io.MultiWriter(h, w), path); err != nil {
		return err
	}
	return h.Verify(path, wantHash, wantSize)
}
