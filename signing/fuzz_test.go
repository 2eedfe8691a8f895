package signing_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/signing"
)

// secretKeyErrRe matches every error ParseSecretKey may return: fixed texts
// and numbers only, so no input can be echoed.
var secretKeyErrRe = regexp.MustCompile(`^parsing secret key: invalid key: (` +
	`want <name>:<base64>, (found no ':'|the name is empty|the base64 part is empty)` +
	`|invalid base64 character at offset \d+` +
	`|decodes to \d+ bytes, want 64( \(is this the public key\?\))?` +
	`|the public half does not match the seed)$`)

func FuzzParseSecretKey(f *testing.F) {
	for _, tc := range secretKeyCases() {
		f.Add(tc.text)
	}
	f.Fuzz(func(t *testing.T, in string) {
		k, err := signing.ParseSecretKey(in)
		if err != nil {
			if !secretKeyErrRe.MatchString(err.Error()) {
				t.Fatalf("unexpected error text (could leak the input): %q", err)
			}
			return
		}
		k2, err := signing.ParseSecretKey(k.Encode())
		if err != nil || k2.Encode() != k.Encode() {
			t.Fatalf("Encode does not round-trip: %v", err)
		}
		if !signing.Verify(k.PublicKey(), []byte(in), k.Sign([]byte(in))) {
			t.Fatal("a signature does not verify with the key's public half")
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	name, sk, pk := testKey()
	for _, s := range []string{name + ":" + pk, name + ":" + pk + "\n", pk, ":" + pk, name + ":" + sk, "a:AAAA", "a:A=A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := signing.ParsePublicKey(in)
		if err != nil {
			return
		}
		p2, err := signing.ParsePublicKey(p.String())
		if err != nil || p2.String() != p.String() {
			t.Fatalf("String does not round-trip: %q → %q, %v", p, p2, err)
		}
		if len(p.Key) != 32 || p.Name == "" {
			t.Fatalf("accepted a %d-byte key named %q", len(p.Key), p.Name)
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	name, sk, _ := testKey()
	k, err := signing.ParseSecretKey(name + ":" + sk)
	if err != nil {
		f.Fatal(err)
	}
	sig := k.Sign([]byte(fp))
	for _, s := range []string{sig, sig + "\n", sig[:40], ":" + sig, "a:", "a:AAAA", "x:" + sig[len(name)+1:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := signing.ParseSignature(in)
		// Verify must agree with ParseSignature and never panic.
		ok := signing.Verify(k.PublicKey(), []byte(fp), in)
		if err != nil {
			if ok {
				t.Fatal("Verify accepts a signature ParseSignature rejects")
			}
			return
		}
		if ok && s.String() != sig {
			t.Fatalf("Verify accepts %q, which is not our signature %q", in, sig)
		}
		s2, err := signing.ParseSignature(s.String())
		if err != nil || s2.String() != s.String() || len(s.Sig) != 64 {
			t.Fatalf("String does not round-trip: %q → %q, %v", s, s2, err)
		}
	})
}

// FuzzParsePublicKeys checks ParsePublicKeys against ParsePublicKey field
// by field: it fails exactly when a field does, keeps the first key of each
// name, and its keys print back to the fields they came from.
func FuzzParsePublicKeys(f *testing.F) {
	name, sk, pk := testKey()
	for _, s := range []string{
		"", name + ":" + pk, name + ":" + pk + " other-1:" + pk, "  \t" + name + ":" + pk + "\n\n",
		name + ":" + pk + " " + name + ":" + sk, name + ":" + pk + " x", "a:AAAA b:" + pk,
		"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		ks, err := signing.ParsePublicKeys(list)
		first := map[string]string{}
		var fieldErr error
		for _, field := range strings.Fields(list) {
			k, err := signing.ParsePublicKey(field)
			if err != nil {
				fieldErr = err
				break
			}
			if _, ok := first[k.Name]; !ok {
				first[k.Name] = k.String()
			}
		}
		if (err == nil) != (fieldErr == nil) {
			t.Fatalf("ParsePublicKeys error %v, a field's error %v", err, fieldErr)
		}
		if err != nil {
			if !errors.Is(err, signing.ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
			return
		}
		if len(ks) != len(first) {
			t.Fatalf("%d keys, want %d", len(ks), len(first))
		}
		for n, k := range ks {
			if k.Name != n || k.String() != first[n] || len(k.Key) != 32 {
				t.Fatalf("key %q is %q, want %q", n, k, first[n])
			}
		}
	})
}
