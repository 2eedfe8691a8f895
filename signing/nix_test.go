package signing_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/signing"
)

func nonce(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// nixKeyPair runs nix-store --generate-binary-cache-key and returns the
// files and their contents.
func nixKeyPair(t *testing.T, name string) (skFile, skText, pkText string) {
	t.Helper()
	nixtest.Require(t)
	dir := t.TempDir()
	skFile, pkFile := filepath.Join(dir, "sk"), filepath.Join(dir, "pk")
	nixtest.Run(t, "nix-store", "--generate-binary-cache-key", name, skFile, pkFile)
	sk, err := os.ReadFile(skFile)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := os.ReadFile(pkFile)
	if err != nil {
		t.Fatal(err)
	}
	return skFile, string(sk), string(pk)
}

// nixPublicKey runs nix key convert-secret-to-public on the secret key text.
func nixPublicKey(t *testing.T, secret string) (string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "sk")
	if err := os.WriteFile(f, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := nixtest.Output(context.Background(), nil, "sh", "-c", `exec nix key convert-secret-to-public < "$1"`, "sh", f)
	return string(out), err
}

var keyFileRe = regexp.MustCompile(`^[^:\s]+:[A-Za-z0-9+/]{86}==$`)

// TestNixGeneratedKeys: keys from nix-store --generate-binary-cache-key parse,
// re-encode byte for byte, and give the public key Nix wrote, byte for byte.
func TestNixGeneratedKeys(t *testing.T) {
	for _, name := range []string{"cache.example.org-1", "k", "nixbucket-test-" + nonce(t)} {
		skFile, skText, pkText := nixKeyPair(t, name)
		if !keyFileRe.MatchString(skText) {
			t.Errorf("Nix's secret key file is not name:<86 base64>== without newline (so our format check is wrong)")
		}
		k, err := signing.ReadSecretKeyFile(skFile)
		if err != nil {
			t.Fatal(err)
		}
		if k.Name() != name {
			t.Errorf("Name() = %q, want %q", k.Name(), name)
		}
		if k.Encode() != skText {
			t.Error("Encode() differs from Nix's secret key file")
		}
		if got := k.PublicKey().String(); got != pkText {
			t.Errorf("derived public key %q, Nix wrote %q", got, pkText)
		}
		pub, err := signing.ParsePublicKey(pkText)
		if err != nil || pub.String() != pkText {
			t.Errorf("ParsePublicKey(%q) = %v, %v", pkText, pub, err)
		}
	}
}

// TestOurKeysWorkInNix: a key we generate has the format of Nix's key files,
// Nix derives the same public key from it, and Nix signs with it exactly as
// we do (nix copy --to 'file://…?secret-key=OUR_FILE').
func TestOurKeysWorkInNix(t *testing.T) {
	nixtest.Require(t)
	k, err := signing.GenerateSecretKey("nixbucket-test-1")
	if err != nil {
		t.Fatal(err)
	}
	if !keyFileRe.MatchString(k.Encode()) {
		t.Errorf("Encode() is not name:<86 base64>== without newline, like Nix's key files")
	}
	got, err := nixPublicKey(t, k.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got != k.PublicKey().String() {
		t.Errorf("Nix derives %q from our key, we derive %q", got, k.PublicKey())
	}

	keyFile := filepath.Join(t.TempDir(), "sk")
	if err := os.WriteFile(keyFile, []byte(k.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	paths := buildPaths(t)
	cache := t.TempDir()
	nixtest.Run(t, "nix", append([]string{"copy", "--to", "file://" + cache + "?compression=none&secret-key=" + keyFile}, append(nixtest.Options, paths...)...)...)
	for _, p := range paths {
		n := readNarinfo(t, cache, p)
		fp, err := n.Fingerprint()
		if err != nil {
			t.Fatal(err)
		}
		want := k.Sign([]byte(fp))
		if !containsString(n.Sigs, want) {
			t.Errorf("Nix's Sigs %q for %s do not include ours %q", n.Sigs, p, want)
		}
	}
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestSecretKeyParsingAgreesWithNix feeds each case of TestParseSecretKey
// to nix key convert-secret-to-public: Nix accepts what we accept (except
// the documented differences, recorded in the table) and derives the same
// public key.
func TestSecretKeyParsingAgreesWithNix(t *testing.T) {
	nixtest.Require(t)
	for _, tc := range secretKeyCases() {
		t.Run(tc.name, func(t *testing.T) {
			nixOut, nixErr := nixPublicKey(t, tc.text)
			if (nixErr == nil) != tc.nix {
				t.Fatalf("Nix accepts: %v (err %v), the table says %v", nixErr == nil, nixErr, tc.nix)
			}
			k, err := signing.ParseSecretKey(tc.text)
			if (err == nil) != tc.ok {
				t.Fatalf("we accept: %v (%v), the table says %v", err == nil, err, tc.ok)
			}
			// TrimSpace: Nix keeps leading white space in the name.
			if err == nil && nixErr == nil && strings.TrimSpace(nixOut) != k.PublicKey().String() {
				t.Errorf("Nix derives %q, we derive %q", nixOut, k.PublicKey())
			}
		})
	}
}

// nixPathInfo is what we need of Nix 2.8's `nix path-info --json`.
type nixPathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	References []string `json:"references"`
	Signatures []string `json:"signatures"`
}

func pathInfo(t *testing.T, paths ...string) []nixPathInfo {
	t.Helper()
	var infos []nixPathInfo
	out := nixtest.Run(t, "nix", append([]string{"path-info", "--json"}, paths...)...)
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	if len(infos) != len(paths) {
		t.Fatalf("nix path-info printed %d entries for %d paths", len(infos), len(paths))
	}
	return infos
}

// buildPaths builds two fresh input-addressed outputs with real Nix, the
// second referring to the first and to itself, and returns their paths.
func buildPaths(t *testing.T) []string {
	t.Helper()
	tag := nonce(t)
	expr := `let dep = ` + nixtest.Derivation("signing-"+tag+"-dep", "echo "+tag+" > $out") + `; in {
		inherit dep;
		top = ` + nixtest.Derivation("signing-"+tag+"-top", "echo ${dep} $out > $out") + `;
	}`
	return nixtest.Build(t, nixtest.WriteExpr(t, expr), "dep", "top")
}

func readNarinfo(t *testing.T, cache, storePath string) *narinfo.NarInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cache, filepath.Base(storePath)[:32]+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := narinfo.Parse(bytes.NewReader(b), narinfo.WithStoreDir(filepath.Dir(storePath)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSignaturesMatchNix: nix store sign signs fresh paths with a Nix
// generated key; our fingerprint of `nix path-info --json` and our
// signature with the same key give Nix's signature byte for byte.
func TestSignaturesMatchNix(t *testing.T) {
	skFile, skText, pkText := nixKeyPair(t, "nixbucket-sign-test-1")
	paths := buildPaths(t)
	nixtest.Run(t, "nix", append([]string{"store", "sign", "--key-file", skFile}, paths...)...)
	k, err := signing.ParseSecretKey(skText)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := signing.ParsePublicKeys(pkText)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range pathInfo(t, paths...) {
		var nixSig string
		for _, s := range info.Signatures {
			if strings.HasPrefix(s, k.Name()+":") {
				nixSig = s
			}
		}
		if nixSig == "" {
			t.Fatalf("nix store sign left no signature by %s on %s: %q", k.Name(), info.Path, info.Signatures)
		}
		h, err := nixhash.ParseAny(info.NarHash, nil)
		if err != nil {
			t.Fatal(err)
		}
		fp, err := narinfo.Fingerprint(info.Path, &h.Hash, info.NarSize, info.References)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Sign([]byte(fp)); got != nixSig {
			t.Errorf("%s: we sign %q, Nix signed %q (fingerprint %q)", info.Path, got, nixSig, fp)
		}
		if n, err := trusted.CountValid([]byte(fp), info.Signatures); n != 1 || err != nil {
			t.Errorf("%s: CountValid of Nix's signatures = %d, %v; want 1", info.Path, n, err)
		}
	}
}

// TestNixAcceptsOurSignatures: an unsigned file:// cache written by nix copy
// gets our signatures (narinfo rewritten with our Sig); Nix's nix store
// verify and a require-sigs substitution into an empty chroot store accept
// them with our public key trusted, and refuse them with another key.
func TestNixAcceptsOurSignatures(t *testing.T) {
	nixtest.Require(t)
	paths := buildPaths(t)
	cache := t.TempDir()
	nixtest.Run(t, "nix", append([]string{"copy", "--to", "file://" + cache + "?compression=none"}, append(nixtest.Options, paths...)...)...)
	k, err := signing.GenerateSecretKey("nixbucket-verify-test-1")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := signing.GenerateSecretKey("nixbucket-verify-test-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		n := readNarinfo(t, cache, p)
		if len(n.Sigs) != 0 {
			t.Fatalf("%s is already signed: %q", p, n.Sigs)
		}
		fp, err := n.Fingerprint()
		if err != nil {
			t.Fatal(err)
		}
		n.Sigs = append(n.Sigs, k.Sign([]byte(fp)))
		if err := os.WriteFile(filepath.Join(cache, filepath.Base(p)[:32]+".narinfo"), []byte(n.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	run := func(args ...string) error {
		_, err := nixtest.Output(context.Background(), []string{"XDG_CACHE_HOME=" + t.TempDir()}, "nix", args...)
		return err
	}
	verify := func(pub signing.PublicKey) error {
		args := append([]string{"store", "verify", "--store", "file://" + cache, "--sigs-needed", "1",
			"--option", "trusted-public-keys", pub.String()}, nixtest.Options...)
		return run(append(args, paths...)...)
	}
	substitute := func(pub signing.PublicKey) error {
		args := append([]string{"copy", "--from", "file://" + cache, "--to", "local?root=" + t.TempDir(),
			"--option", "trusted-public-keys", pub.String(), "--option", "require-sigs", "true"}, nixtest.Options...)
		return run(append(args, paths...)...)
	}
	if err := verify(k.PublicKey()); err != nil {
		t.Errorf("nix store verify refuses our signatures: %v", err)
	}
	if err := verify(stranger.PublicKey()); err == nil {
		t.Error("nix store verify accepts our signatures under another key of the same name")
	}
	if err := substitute(k.PublicKey()); err != nil {
		t.Errorf("nix copy --from with require-sigs refuses our signatures: %v", err)
	}
	if err := substitute(stranger.PublicKey()); err == nil {
		t.Error("nix copy --from with require-sigs accepts our signatures under another key")
	}
}
