package signing_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/signing"
)

// TestReadSecretKeyFileKeyTextAsPath gives ReadSecretKeyFile the key text
// where its file name belongs, in the forms a shell, a CI secret or a URL
// query (which decodes '+' to ' ') can produce: the error says the file
// cannot be read and shows no piece of the key.
func TestReadSecretKeyFileKeyTextAsPath(t *testing.T) {
	t.Parallel()
	name, sk, pk := testKey()
	for _, tc := range []struct{ name, text string }{
		{"as written", name + ":" + sk},
		{"trailing newline", name + ":" + sk + "\n"},
		{"no padding", name + ":" + strings.TrimRight(sk, "=")},
		{"URL-decoded, '+' as ' '", name + ":" + strings.ReplaceAll(sk, "+", " ")},
		{"garbage after the padding", name + ":" + sk + "!?*"},
		{"without a name", sk},
		{"the public key", name + ":" + pk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := signing.ReadSecretKeyFile(tc.text)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("got %v, want fs.ErrNotExist", err)
			}
			if !strings.Contains(err.Error(), "looks like key text") {
				t.Errorf("error %q does not say the value looks like key text", err)
			}
			assertNoSecret(t, err.Error(), sk)
			assertNoSecret(t, err.Error(), pk)
			if got := signing.SafeKeyPath(tc.text); got != "(key text, not shown)" {
				t.Errorf("SafeKeyPath = %q", got)
			}
		})
	}
}

// TestSafeKeyPath checks that ordinary file names are shown as they are.
func TestSafeKeyPath(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		"cache.key",
		"/run/keys/cache.example.org-1.sec",
		"/nix/store/0c0a8avxvvg2k0ly4xqqkzy2pk0zjwnz-cache-key/secret",
		"/home/someone/projects/nixbucket/keys/production/cache/signing/secretkey", // 72 characters, all base64
		"/srv/a:b/cache.key",
		"keys:/etc/nix/secret",
		"",
	} {
		if got := signing.SafeKeyPath(p); got != p {
			t.Errorf("SafeKeyPath(%q) = %q, want it unchanged", p, got)
		}
	}
}
