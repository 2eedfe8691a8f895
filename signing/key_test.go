package signing_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/signing"
)

// testKey is a fixed key for the tables (its seed is 32 bytes 0x01…0x20).
func testKey() (name, secretB64, publicB64 string) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return "test-1", base64.StdEncoding.EncodeToString(priv), base64.StdEncoding.EncodeToString(priv[32:])
}

// secretKeyCase is a secret key text and whether we accept it; nix says
// whether Nix 2.8 (nix key convert-secret-to-public) accepts it, checked in
// TestSecretKeyParsingAgreesWithNix.
type secretKeyCase struct {
	name    string
	text    string
	ok      bool
	nix     bool
	wantErr string
}

func secretKeyCases() []secretKeyCase {
	name, sk, pk := testKey()
	wrongPub := []byte(mustDecode(sk))
	wrongPub[40] ^= 1
	return []secretKeyCase{
		{name: "as nix writes it", text: name + ":" + sk, ok: true, nix: true},
		{name: "trailing newline", text: name + ":" + sk + "\n", ok: true, nix: true},
		{name: "newline inside the base64", text: name + ":" + sk[:40] + "\n" + sk[40:], ok: true, nix: true},
		{name: "no padding", text: name + ":" + strings.TrimRight(sk, "="), ok: true, nix: true},
		{name: "anything after '='", text: name + ":" + sk + "garbage!", ok: true, nix: true},
		{name: "name with a dot", text: "cache.example.org-1:" + sk, ok: true, nix: true},
		// Nix ignores what follows the '=' padding, so these pass in Nix too,
		// though Nix keeps leading spaces in the key name where we trim them.
		{name: "trailing CRLF", text: name + ":" + sk + "\r\n", ok: true, nix: true},
		{name: "surrounding spaces", text: "  " + name + ":" + sk + "  ", ok: true, nix: true},
		// We trim white space; without padding, Nix's decoder meets the '\r'.
		{name: "trailing CRLF, no padding", text: name + ":" + strings.TrimRight(sk, "=") + "\r\n", ok: true, nix: false},
		{name: "no colon", text: sk, wantErr: "found no ':'"},
		{name: "empty name", text: ":" + sk, wantErr: "the name is empty"},
		{name: "empty data", text: name + ":", wantErr: "the base64 part is empty"},
		{name: "empty", text: "", wantErr: "found no ':'"},
		{name: "public key instead", text: name + ":" + pk, wantErr: "decodes to 32 bytes, want 64 (is this the public key?)"},
		{name: "truncated", text: name + ":" + sk[:80], wantErr: "decodes to 60 bytes, want 64"},
		{name: "too long", text: name + ":" + strings.TrimRight(sk, "=") + "AAAAAAAA", wantErr: "decodes to 70 bytes, want 64"},
		{name: "invalid character", text: name + ":" + sk[:10] + "*" + sk[11:], wantErr: "invalid base64 character at offset 10"},
		// Nix would sign with a public half that does not match and produce
		// signatures nobody can verify; we refuse the key.
		{
			name: "public half does not match the seed", nix: true,
			text:    name + ":" + base64.StdEncoding.EncodeToString(wrongPub),
			wantErr: "the public half does not match the seed",
		},
	}
}

func mustDecode(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestParseSecretKey(t *testing.T) {
	t.Parallel()
	_, sk, pk := testKey()
	for _, tc := range secretKeyCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := signing.ParseSecretKey(tc.text)
			if !tc.ok {
				if err == nil {
					t.Fatalf("accepted, want an error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, signing.ErrInvalidKey) {
					t.Errorf("got %v, want ErrInvalidKey with %q", err, tc.wantErr)
				}
				assertNoSecret(t, err.Error(), sk)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantName := strings.TrimSpace(tc.text)[:strings.Index(strings.TrimSpace(tc.text), ":")]
			if k.Name() != wantName {
				t.Errorf("Name() = %q, want %q", k.Name(), wantName)
			}
			if got, want := k.Encode(), wantName+":"+sk; got != want {
				t.Errorf("Encode() = %q, want %q", got, want)
			}
			if got, want := k.PublicKey().String(), wantName+":"+pk; got != want {
				t.Errorf("PublicKey() = %q, want %q", got, want)
			}
		})
	}
}

// assertNoSecret fails if s contains any 6-character piece of the base64
// secret key.
func assertNoSecret(t *testing.T, s, secretB64 string) {
	t.Helper()
	for i := 0; i+6 <= len(secretB64); i++ {
		if strings.Contains(s, secretB64[i:i+6]) {
			t.Fatalf("%q contains %q, a piece of the secret key", s, secretB64[i:i+6])
		}
	}
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	name, sk, pk := testKey()
	for _, tc := range []struct {
		name, text, wantErr string
	}{
		{name: "as nix writes it", text: name + ":" + pk},
		{name: "trailing newline", text: name + ":" + pk + "\n"},
		{name: "no colon", text: pk, wantErr: "found no ':'"},
		{name: "empty name", text: ":" + pk, wantErr: "the name is empty"},
		{name: "secret key instead", text: name + ":" + sk, wantErr: `"test-1": invalid key: decodes to 64 bytes, want 32 (is this a secret key? keep it secret)`},
		{name: "short", text: name + ":AAAA", wantErr: "decodes to 3 bytes, want 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := signing.ParsePublicKey(tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, signing.ErrInvalidKey) {
					t.Fatalf("got %v, want ErrInvalidKey with %q", err, tc.wantErr)
				}
				assertNoSecret(t, err.Error(), sk)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != name || p.String() != name+":"+pk {
				t.Errorf("got %s, want %s:%s", p, name, pk)
			}
		})
	}
}

func TestGenerateSecretKey(t *testing.T) {
	t.Parallel()
	k, err := signing.GenerateSecretKey("cache.example.org-1")
	if err != nil {
		t.Fatal(err)
	}
	text := k.Encode()
	if !strings.HasPrefix(text, "cache.example.org-1:") || len(text) != len("cache.example.org-1:")+88 {
		t.Errorf("Encode() = %d bytes, want the name, ':' and 88 base64 characters", len(text))
	}
	k2, err := signing.ParseSecretKey(text)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Encode() != text || k2.PublicKey().String() != k.PublicKey().String() {
		t.Error("the parsed key differs from the generated one")
	}
	other, err := signing.GenerateSecretKey("cache.example.org-1")
	if err != nil {
		t.Fatal(err)
	}
	if other.Encode() == text {
		t.Error("two generated keys are equal")
	}
	for _, bad := range []string{"", "a:b", "a b", "a\n"} {
		if _, err := signing.GenerateSecretKey(bad); !errors.Is(err, signing.ErrInvalidKey) {
			t.Errorf("GenerateSecretKey(%q): got %v, want ErrInvalidKey", bad, err)
		}
	}
}

func TestReadSecretKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name, sk, _ := testKey()
	write := func(file, content string) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", name+":"+sk+"\n")
	k, err := signing.ReadSecretKeyFile(good)
	if err != nil || k.Name() != name {
		t.Fatalf("ReadSecretKeyFile(good) = %v, %v", k, err)
	}
	for _, tc := range []struct {
		name, path string
		want       []string
		is         error
	}{
		{name: "missing", path: filepath.Join(dir, "missing"), want: []string{filepath.Join(dir, "missing"), "no such file"}, is: os.ErrNotExist},
		{name: "directory", path: dir, want: []string{dir}},
		{name: "public key", path: write("pub", name+":"+sk[:44]), want: []string{write("pub", name+":"+sk[:44]), "decodes to 33 bytes, want 64"}, is: signing.ErrInvalidKey},
		{name: "empty", path: write("empty", ""), want: []string{"found no ':'"}, is: signing.ErrInvalidKey},
		{name: "too large", path: write("large", strings.Repeat(sk, 1000)), want: []string{"not a key file"}, is: signing.ErrInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := signing.ReadSecretKeyFile(tc.path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want errors.Is %v", err, tc.is)
			}
			assertNoSecret(t, err.Error(), sk)
		})
	}
}
