package store

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nixbucket/nixbucket/storepath"
)

// maxLinks bounds the symlinks Resolve follows, like the kernel's ELOOP.
const maxLinks = 40

// Resolve turns a command-line argument into the store path it designates,
// as Nix's followLinksToStorePath does (src/libstore/store-api.cc): the
// argument is made absolute; while it is outside the store directory dir and
// a symbolic link (a `result` link, a profile), the link is followed; a path
// inside a store path (dir/<hash>-name/bin/foo) gives that store path
// (dir/<hash>-name). When Nix's lexical walk ends outside the store, Resolve
// also tries the fully resolved path (filepath.EvalSymlinks), which accepts
// result/bin/foo where Nix would not.
//
// The store path is checked for form (storepath.Check), not for validity. A path
// outside the store is an error wrapping storepath.ErrInvalid.
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
			return "", "", fmt.Errorf("%w: %s is not in the Nix store %s", storepath.ErrInvalid, arg, dir)
		}
		p = real
	}
	base, _, _ := strings.Cut(p[len(dir)+1:], "/")
	sp := dir + "/" + base
	if err := storepath.Check(dir, sp); err != nil {
		return "", "", fmt.Errorf("resolving %s: %w", arg, err)
	}
	return sp, p, nil
}

// inDir reports whether p is strictly below dir (Nix's isInDir).
func inDir(dir, p string) bool {
	return len(p) >= len(dir)+2 && strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}
