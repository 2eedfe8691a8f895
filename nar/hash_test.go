package nar_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/nixbucket/nixbucket/nar"
)

// TestVerifyPath checks VerifyPath against the NarHash and NarSize Nix
// recorded: it accepts them, and refuses a wrong hash or size with an error
// naming the path.
func TestVerifyPath(t *testing.T) {
	p := buildAll(t, map[string]string{"rootfile": storeScripts["rootfile"]})["rootfile"]
	wantHash, wantSize := nixPathInfo(t, p)
	other := bytes.Clone(wantHash.Digest())
	other[0] ^= 1
	wrongHash := nixhash.MustNewHash(nixhash.SHA256, other)
	sha1 := nixhash.MustNewHash(nixhash.SHA1, make([]byte, 20))

	tests := []struct {
		name string
		hash *nixhash.Hash
		size uint64
		want string // "" for success
	}{
		{name: "match", hash: wantHash, size: wantSize},
		{name: "hash", hash: wrongHash, size: wantSize,
			want: "NAR of " + p + ": hash " + wantHash.Format(nixhash.NixBase32, true) +
				" does not match the store's " + wrongHash.Format(nixhash.NixBase32, true)},
		{name: "size", hash: wantHash, size: wantSize + 8,
			want: "NAR of " + p + ": size 128 does not match the store's 136"},
		{name: "both", hash: wrongHash, size: 7,
			want: "NAR of " + p + ": hash " + wantHash.Format(nixhash.NixBase32, true) + " (128 bytes) does not match the store's " +
				wrongHash.Format(nixhash.NixBase32, true) + " (7 bytes)"},
		{name: "not-sha256", hash: sha1, size: wantSize, want: "the expected hash is not a SHA-256"},
		{name: "nil", hash: nil, size: wantSize, want: "the expected hash is not a SHA-256"},
	}
	if wantSize != 128 {
		t.Fatalf("the test expects a NAR of 128 bytes, Nix says %d", wantSize)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := nar.VerifyPath(context.Background(), &buf, p, tc.hash, tc.size)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("VerifyPath = %v, want nil", err)
				}
				if !bytes.Equal(buf.Bytes(), nixDump(t, p)) {
					t.Errorf("VerifyPath wrote a NAR that differs from nix-store --dump")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyPath = %v, want an error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			var me *nar.MismatchError
			if tc.hash != nil && tc.hash.Algo() == nixhash.SHA256 {
				if !errors.Is(err, nar.ErrMismatch) || !errors.As(err, &me) || me.Path != p || me.WantSize != tc.size {
					t.Errorf("error %#v is not a *MismatchError for %s wrapping ErrMismatch", err, p)
				}
			} else if errors.Is(err, nar.ErrMismatch) {
				t.Errorf("an unusable expected hash is reported as a mismatch: %v", err)
			}
		})
	}
}

// TestHasher checks the Hasher against the SHA-256 of a known input.
func TestHasher(t *testing.T) {
	h := nar.NewHasher()
	for _, s := range []string{"a", "b", "c"} {
		if _, err := io.WriteString(h, s); err != nil {
			t.Fatal(err)
		}
	}
	// sha256("abc"), FIPS 180-2 appendix B.1.
	want := "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
	if got := h.Hash().Format(nixhash.NixBase32, true); got != want || h.Size() != 3 {
		t.Errorf("Hasher of abc = %s, %d; want %s, 3", got, h.Size(), want)
	}
}
