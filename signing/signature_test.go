package signing_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/signing"
)

const fp = "1;/nix/store/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-nbtry-top;sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0;168;"

func TestSignVerify(t *testing.T) {
	t.Parallel()
	name, sk, _ := testKey()
	k, err := signing.ParseSecretKey(name + ":" + sk)
	if err != nil {
		t.Fatal(err)
	}
	other, err := signing.GenerateSecretKey("other-1")
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := signing.GenerateSecretKey(name) // same name, other key
	if err != nil {
		t.Fatal(err)
	}
	sig := k.Sign([]byte(fp))
	if sig != k.Sign([]byte(fp)) {
		t.Error("Sign is not deterministic")
	}
	if !strings.HasPrefix(sig, name+":") || len(sig) != len(name)+1+88 {
		t.Errorf("Sign = %q, want %s:<88 base64 characters>", sig, name)
	}
	s, err := signing.ParseSignature(sig)
	if err != nil || s.Name != name || len(s.Sig) != 64 || s.String() != sig {
		t.Errorf("ParseSignature(%q) = %+v, %v", sig, s, err)
	}

	flipped := []byte(sig)
	flipped[len(name)+5] ^= 'A' ^ 'B'
	tests := []struct {
		name string
		pub  signing.PublicKey
		fp   string
		sig  string
		want bool
	}{
		{"valid", k.PublicKey(), fp, sig, true},
		{"other fingerprint", k.PublicKey(), fp + "x", sig, false},
		{"other key name", other.PublicKey(), fp, sig, false},
		{"same name, other key", impostor.PublicKey(), fp, sig, false},
		{"flipped bit", k.PublicKey(), fp, string(flipped), false},
		{"renamed signature", k.PublicKey(), fp, "other-1" + sig[len(name):], false},
		{"malformed", k.PublicKey(), fp, name + ":AAAA", false},
		{"empty", k.PublicKey(), fp, "", false},
	}
	for _, tc := range tests {
		if got := signing.Verify(tc.pub, []byte(tc.fp), tc.sig); got != tc.want {
			t.Errorf("%s: Verify = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPublicKeys(t *testing.T) {
	t.Parallel()
	a, _ := signing.GenerateSecretKey("a-1")
	b, _ := signing.GenerateSecretKey("b-1")
	a2, _ := signing.GenerateSecretKey("a-1")
	keys, err := signing.ParsePublicKeys("  " + a.PublicKey().String() + "\n" + b.PublicKey().String() + " " + a2.PublicKey().String())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys["a-1"].String() != a.PublicKey().String() {
		t.Errorf("got %v, want a-1 (the first one) and b-1", keys)
	}
	c, _ := signing.GenerateSecretKey("c-1")
	sa, sb, sc, sa2 := a.Sign([]byte(fp)), b.Sign([]byte(fp)), c.Sign([]byte(fp)), a2.Sign([]byte(fp))

	for _, tc := range []struct {
		name    string
		sigs    []string
		want    int
		wantErr bool
	}{
		{"none", nil, 0, false},
		{"one", []string{sa}, 1, false},
		{"two keys", []string{sb, sa}, 2, false},
		{"duplicates count once", []string{sa, sa, sa}, 1, false},
		{"unknown key name ignored", []string{sc}, 0, false},
		{"same name, untrusted key", []string{sa2}, 0, false},
		{"malformed from a trusted name", []string{"a-1:AAAA", sb}, 1, true},
		{"malformed from an unknown name ignored", []string{"z-1:AAAA", sb}, 1, false},
		{"no colon", []string{"garbage"}, 0, false},
	} {
		got, err := keys.CountValid([]byte(fp), tc.sigs)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s: CountValid = %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, signing.ErrInvalidSignature) {
			t.Errorf("%s: got %v, want ErrInvalidSignature", tc.name, err)
		}
	}
	if _, err := signing.ParsePublicKeys("a-1:AAAA"); !errors.Is(err, signing.ErrInvalidKey) {
		t.Errorf("ParsePublicKeys of a bad key: got %v, want ErrInvalidKey", err)
	}
	if ks := signing.NewPublicKeys(a2.PublicKey(), a.PublicKey()); ks["a-1"].String() != a2.PublicKey().String() {
		t.Error("NewPublicKeys does not keep the first key of a name")
	}
}

func TestParseSignatureErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", "found no ':'"},
		{":AAAA", "the name is empty"},
		{"a-1:", "the base64 part is empty"},
		{"a-1:AAAA", "decodes to 3 bytes, want 64"},
		{"a-1:AA*A", "invalid base64 character at offset 2"},
	} {
		_, err := signing.ParseSignature(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, signing.ErrInvalidSignature) {
			t.Errorf("ParseSignature(%q): got %v, want ErrInvalidSignature with %q", tc.in, err, tc.want)
		}
	}
}
