// Package storepath parses and checks Nix store paths,
// <store dir>/<32 nix32 characters>-<name>, as Nix's StorePath does
// (src/libstore/path.cc), for any store directory.
//
// It is the one place in nixbucket that knows what a store path looks
// like. go-nix's storepath package would be the natural choice, but it
// hard-codes /nix/store as the store directory, and nixbucket serves and
// pushes stores that live elsewhere (NIX_STORE_DIR, test stores under a
// temporary directory), so the few rules are written out here.
//
// The package does not look at the file system: store.Resolve turns a
// command-line argument (a `result` link) into a store path.
package storepath

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"
)

const (
	// HashLen is the length of the nix32 hash part of a store path's base name.
	HashLen = 32
	// MaxNameLen is Nix's StorePath::MaxPathLen: the longest name after the hash.
	MaxNameLen = 211
)

// ErrInvalid is returned (wrapped) for a string that is not a well-formed
// store path: wrong store directory, bad hash part or bad name.
var ErrInvalid = errors.New("not a valid store path")

// DefaultDir returns the store directory Nix uses when none is given, as
// settings.nixStore in Nix's src/libstore/globals.cc: $NIX_STORE_DIR, else
// $NIX_STORE, else /nix/store; cleaned (no trailing slash, no "//" or "."
// elements).
func DefaultDir() string {
	for _, v := range []string{"NIX_STORE_DIR", "NIX_STORE"} {
		if d := os.Getenv(v); d != "" {
			return filepath.Clean(d)
		}
	}
	return "/nix/store"
}

// Check reports whether p is a well-formed store path directly inside the
// store directory dir: dir/<32 nix32 chars>-<name>, with a name of 1 to 211
// characters from [a-zA-Z0-9+-._?=] that is not "." or ".." (nor starts
// with ".-" or "..-"). The error wraps ErrInvalid.
func Check(dir, p string) error {
	base, ok := strings.CutPrefix(p, dir+"/")
	if !ok || dir == "" {
		return fmt.Errorf("%w: %q is not in the store directory %s", ErrInvalid, p, dir)
	}
	if why := baseProblem(base); why != "" {
		return fmt.Errorf("%w: %q %s", ErrInvalid, p, why)
	}
	return nil
}

// Parse is Check of p cleaned first, as Nix's Store::parseStorePath
// canonicalises its argument; it returns the cleaned path. p must be
// absolute.
func Parse(dir, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%w: %q is not absolute", ErrInvalid, p)
	}
	p = path.Clean(p)
	if err := Check(dir, p); err != nil {
		return "", err
	}
	return p, nil
}

// CheckBase reports whether base is a well-formed store path base name,
// <32 nix32 chars>-<name>, as Check describes. The error wraps ErrInvalid.
func CheckBase(base string) error {
	if why := baseProblem(base); why != "" {
		return fmt.Errorf("%w: %q %s", ErrInvalid, base, why)
	}
	return nil
}

// IsHashPart reports whether s is a store path hash part: 32 characters of
// Nix's base-32 alphabet.
func IsHashPart(s string) bool {
	if len(s) != HashLen {
		return false
	}
	for i := range HashLen {
		if !nixbase32.Is(s[i]) {
			return false
		}
	}
	return true
}

// baseProblem says what is wrong with a store path base name, or "".
func baseProblem(base string) string {
	if len(base) < HashLen+2 {
		return "is too short"
	}
	for i := range HashLen {
		if !nixbase32.Is(base[i]) {
			return fmt.Sprintf("has the illegal nix32 character %q in its hash part", base[i])
		}
	}
	if base[HashLen] != '-' {
		return "has no '-' after its hash part"
	}
	name := base[HashLen+1:]
	if len(name) > MaxNameLen {
		return fmt.Sprintf("has a name longer than %d characters", MaxNameLen)
	}
	if name == "." || name == ".." || strings.HasPrefix(name, ".-") || strings.HasPrefix(name, "..-") {
		return fmt.Sprintf("has the illegal name %q", name)
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '+', c == '-', c == '.', c == '_', c == '?', c == '=':
		default:
			return fmt.Sprintf("has the illegal character %q in its name", c)
		}
	}
	return ""
}

// Base returns the last element of a store path, <hash>-<name>.
func Base(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// HashPart returns the 32-character nix32 hash part of a store path, or ""
// when its base name is too short to have one.
func HashPart(p string) string {
	base := Base(p)
	if len(base) < HashLen {
		return ""
	}
	return base[:HashLen]
}

// HashParts returns the sorted, distinct hash parts of paths (store paths
// or base names, such as a narinfo's References), skipping those too
// short to have one.
func HashParts(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if h := HashPart(p); h != "" {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Name returns the name part of a store path (after "<hash>-"), or "" when
// its base name is too short to have one.
func Name(p string) string {
	base := Base(p)
	if len(base) < HashLen+1 {
		return ""
	}
	return base[HashLen+1:]
}

// IsDerivation reports whether the store path names a derivation (.drv).
func IsDerivation(p string) bool {
	return strings.HasSuffix(p, ".drv")
}
