package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"
)

const (
	// HashLen is the length of the nix32 hash part of a store path's base name.
	HashLen = 32
	// maxNameLen is Nix's StorePath::MaxPathLen: the longest name after the hash.
	maxNameLen = 211
	// maxLinks bounds the symlinks Resolve follows, like the kernel's ELOOP.
	maxLinks = 40
)

// ErrBadPath is returned (wrapped) for a string that is not a well-formed
// store path: wrong store directory, bad hash part or bad name.
var ErrBadPath = errors.New("not a valid store path")

// CheckPath reports whether p is a well-formed store path directly inside
// the store directory dir: dir/<32 nix32 chars>-<name>, with a name of 1 to
// 211 characters from [a-zA-Z0-9+-._?=] that is not "." or ".." (nor starts
// with ".-" or "..-"), as Nix's StorePath (src/libstore/path.cc). It does
// not look at the file system. The error wraps ErrBadPath.
func CheckPath(dir, p string) error {
	base, ok := strings.CutPrefix(p, dir+"/")
	if !ok || dir == "" {
		return fmt.Errorf("%w: %q is not in the store directory %s", ErrBadPath, p, dir)
	}
	if why := baseNameProblem(base); why != "" {
		return fmt.Errorf("%w: %q %s", ErrBadPath, p, why)
	}
	return nil
}

// CheckBaseName reports whether base is a well-formed store path base name,
// <32 nix32 chars>-<name>, as CheckPath describes. The error wraps ErrBadPath.
func CheckBaseName(base string) error {
	if why := baseNameProblem(base); why != "" {
		return fmt.Errorf("%w: %q %s", ErrBadPath, base, why)
	}
	return nil
}

// baseNameProblem says what is wrong with a store path base name, or "".
func baseNameProblem(base string) string {
	if len(base) < HashLen+2 {
		return "is too short"
	}
	for i := 0; i < HashLen; i++ {
		if !nixbase32.Is(base[i]) {
			return fmt.Sprintf("has the illegal nix32 character %q in its hash part", base[i])
		}
	}
	if base[HashLen] != '-' {
		return "has no '-' after its hash part"
	}
	name := base[HashLen+1:]
	if len(name) > maxNameLen {
		return fmt.Sprintf("has a name longer than %d characters", maxNameLen)
	}
	if name == "." || name == ".." || strings.HasPrefix(name, ".-") || strings.HasPrefix(name, "..-") {
		return fmt.Sprintf("has the illegal name %q", name)
	}
	for i := 0; i < len(name); i++ {
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

// BaseName returns the last element of a store path, <hash>-<name>.
func BaseName(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// HashPart returns the 32-character nix32 hash part of a store path, or ""
// when its base name is too short to have one.
func HashPart(p string) string {
	base := BaseName(p)
	if len(base) < HashLen {
		return ""
	}
	return base[:HashLen]
}

// Name returns the name part of a store path (after "<hash>-"), or "" when
// its base name is too short to have one.
func Name(p string) string {
	base := BaseName(p)
	if len(base) < HashLen+1 {
		return ""
	}
	return base[HashLen+1:]
}

// IsDerivation reports whether the store path names a derivation (.drv).
func IsDerivation(p string) bool {
	return strings.HasSuffix(p, ".drv")
}

// Resolve turns a command-line argument into the store path it designates,
// as Nix's followLinksToStorePath does (src/libstore/store-api.cc): the
// argument is made absolute; while it is outside the store directory dir and
// a symbolic link (a `result` link, a profile), the link is followed; a path
// inside a store path (dir/<hash>-name/bin/foo) gives that store path
// (dir/<hash>-name). When Nix's lexical walk ends outside the store, Resolve
// also tries the fully resolved path (filepath.EvalSymlinks), which accepts
// result/bin/foo where Nix would not.
//
// The store path is checked for form (CheckPath), not for validity. A path
// outside the store is an error wrapping ErrBadPath.
func Resolve(dir, arg string) (string, error) {
	sp, _, err := ResolveInside(dir, arg)
	return sp, err
}

// ResolveInside is Resolve that also returns the path inside the store
// that arg names, its links outside the store followed: the store path
// itself for a `result` link, dir/<hash>-name/bin/foo for that file or for
// result/bin/foo. Nothing is checked to exist inside the store.
func ResolveInside(dir, arg string) (storePath, inside string, err error) {
	abs, err := filepath.Abs(arg)
	if err != nil {
		return "", "", fmt.Errorf("resolving %s: %w", arg, err)
	}
	p := abs
	for i := 0; !inDir(dir, p); i++ {
		fi, err := os.Lstat(p)
		if err != nil {
			return "", "", fmt.Errorf("resolving %s: %w", arg, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			break
		}
		if i == maxLinks {
			return "", "", fmt.Errorf("resolving %s: more than %d symbolic links", arg, maxLinks)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", "", fmt.Errorf("resolving %s: %w", arg, err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = filepath.Clean(target)
	}
	if !inDir(dir, p) {
		real, err := filepath.EvalSymlinks(abs)
		if err != nil || !inDir(dir, real) {
			return "", "", fmt.Errorf("%w: %s is not in the Nix store %s", ErrBadPath, arg, dir)
		}
		p = real
	}
	base, _, _ := strings.Cut(p[len(dir)+1:], "/")
	sp := dir + "/" + base
	if err := CheckPath(dir, sp); err != nil {
		return "", "", fmt.Errorf("resolving %s: %w", arg, err)
	}
	return sp, p, nil
}

// inDir reports whether p is strictly below dir (Nix's isInDir).
func inDir(dir, p string) bool {
	return len(p) >= len(dir)+2 && strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}
