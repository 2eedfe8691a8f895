package narinfo

import (
	"fmt"
	"path"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// hashLen is the length of the nix32 hash part of a store path's base name.
const hashLen = 32

// maxNameLen is the longest name Nix allows after the hash part.
const maxNameLen = 211

// parseStorePath checks that p is a store path directly in storeDir
// (Store::parseStorePath) and returns it cleaned.
func parseStorePath(storeDir, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("store path %q is not absolute", p)
	}
	p = path.Clean(p)
	if path.Dir(p) != storeDir {
		return "", fmt.Errorf("path %q is not in the Nix store %s", p, storeDir)
	}
	if err := checkBaseName(path.Base(p)); err != nil {
		return "", err
	}
	return p, nil
}

// checkBaseName checks a store path base name "<32 nix32 chars>-<name>" as
// Nix's StorePath constructor and checkName do.
func checkBaseName(s string) error {
	if len(s) < hashLen+2 || s[hashLen] != '-' {
		return fmt.Errorf("%q is not a store path base name <hash>-<name>", s)
	}
	for i := range hashLen {
		if strings.IndexByte(nixbase32.Alphabet, s[i]) < 0 {
			return fmt.Errorf("store path %q has an invalid character %q in its hash part", s, s[i])
		}
	}
	name := s[hashLen+1:]
	if len(name) > maxNameLen {
		return fmt.Errorf("store path %q has a name longer than %d characters", s, maxNameLen)
	}
	for i := range len(name) {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("+-._?=", c) >= 0) {
			return fmt.Errorf("store path %q has an invalid character %q in its name", s, c)
		}
	}
	return nil
}

// parseCA checks a content address (parseContentAddress in
// src/libstore/content-address.cc) and returns it as Nix renders it, with
// the hash in nix32: "text:sha256:<h>", "fixed:[r:|git:]<algo>:<h>".
func parseCA(s string) (string, error) {
	prefix, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("content address %q is not <method>:<hash>", s)
	}
	method := ""
	switch prefix {
	case "text":
	case "fixed":
		for _, m := range []string{"r:", "git:"} {
			if strings.HasPrefix(rest, m) {
				method, rest = m, rest[len(m):]
				break
			}
		}
	default:
		return "", fmt.Errorf("content address %q: unknown method %q, want text or fixed", s, prefix)
	}
	algoName, digest, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("content address %q has no hash algorithm", s)
	}
	algo, err := nixhash.ParseAlgorithm(algoName)
	if err != nil {
		return "", fmt.Errorf("content address %q: %w", s, err)
	}
	if prefix == "text" && algo != nixhash.SHA256 {
		return "", fmt.Errorf("content address %q: text hashes must use sha256", s)
	}
	if strings.ContainsAny(digest, ":-") {
		return "", fmt.Errorf("content address %q: malformed hash", s)
	}
	h, err := nixhash.ParseAny(digest, &algo)
	if err == nil {
		_, err = nixhash.NewHash(h.Algo(), h.Digest()) // checks the length
	}
	if err != nil {
		return "", fmt.Errorf("content address %q: %w", s, err)
	}
	return prefix + ":" + method + h.Format(nixhash.NixBase32, true), nil
}
