package narinfo

import (
	"fmt"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

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
