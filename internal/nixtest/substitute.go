package nixtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Substitute has real Nix copy paths from the binary cache at cacheURL
// (e.g. an http:// view of a bucket) into a new, empty chroot store, with
// signatures required and trustedKey ("name:base64") as the only trusted
// key. .drv paths are copied as derivations (nix copy --derivation), the
// others as they are. Nix runs with a cache directory of its own: its
// narinfo disk cache is keyed by the cache URL, and a loopback port reused
// from an earlier test would otherwise serve that test's narinfos. It
// returns the chroot's root and Nix's error, if any.
func Substitute(t testing.TB, cacheURL, trustedKey string, paths []string) (string, error) {
	t.Helper()
	Require(t)
	root := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	var drvs, outs []string
	for _, p := range paths {
		if strings.HasSuffix(p, ".drv") {
			drvs = append(drvs, p)
		} else {
			outs = append(outs, p)
		}
	}
	for _, group := range []struct {
		extra []string
		paths []string
	}{{nil, outs}, {[]string{"--derivation"}, drvs}} {
		if len(group.paths) == 0 {
			continue
		}
		args := append([]string{"copy", "--from", cacheURL, "--to", "local?root=" + root,
			"--option", "trusted-public-keys", trustedKey, "--option", "require-sigs", "true",
			"--option", "narinfo-cache-negative-ttl", "0"}, group.extra...)
		args = append(args, group.paths...)
		args = append(args, Options...)
		if _, err := Output(context.Background(), env, "nix", args...); err != nil {
			return root, err
		}
	}
	return root, nil
}

// AssertInStore fails the test unless every path exists under the chroot
// store root (as returned by Substitute).
func AssertInStore(t testing.TB, root string, paths []string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Fatalf("%s was not substituted into %s: %v", p, root, err)
		}
	}
}
