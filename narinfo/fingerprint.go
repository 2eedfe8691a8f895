package narinfo

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

// Fingerprint returns the bytes a binary cache signature covers
// (ValidPathInfo::fingerprint in src/libstore/path-info.cc):
//
//	1;<storePath>;<narHash as algo:nix32>;<narSize>;<references joined by ,>
//
// storePath and references are full store paths; references are sorted and
// deduplicated here. It fails when narSize is 0 or narHash is nil, as Nix does.
func Fingerprint(storePath string, narHash *nixhash.Hash, narSize uint64, references []string) (string, error) {
	if storePath == "" {
		return "", errors.New("computing fingerprint: empty store path")
	}
	if narHash == nil {
		return "", fmt.Errorf("computing fingerprint of %s: NarHash is not known", storePath)
	}
	if narSize == 0 {
		return "", fmt.Errorf("computing fingerprint of %s: NarSize is not known", storePath)
	}
	return "1;" + storePath + ";" + formatHash(narHash) + ";" + strconv.FormatUint(narSize, 10) + ";" +
		strings.Join(sortedSet(references), ","), nil
}

// Fingerprint returns the signature fingerprint of n (see the function
// Fingerprint). Its references are made full paths in the directory of
// n.StorePath, so no store directory needs to be given.
func (n *NarInfo) Fingerprint() (string, error) {
	if !path.IsAbs(n.StorePath) {
		return "", fmt.Errorf("computing fingerprint: store path %q is not absolute", n.StorePath)
	}
	dir := path.Dir(n.StorePath)
	refs := make([]string, len(n.References))
	for i, r := range n.References {
		refs[i] = dir + "/" + r
	}
	return Fingerprint(n.StorePath, n.NarHash, n.NarSize, refs)
}
