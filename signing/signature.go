package signing

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalidSignature is wrapped by the errors about malformed signatures.
var ErrInvalidSignature = errors.New("invalid signature")

// Signature is a parsed "<keyname>:<base64>" signature.
type Signature struct {
	// Name is the name of the key that made it.
	Name string
	// Sig is the 64-byte ed25519 signature.
	Sig []byte
}

// ParseSignature parses a signature "<keyname>:<base64 of 64 bytes>" as Nix
// does (no trimming: a narinfo's Sig value is taken as it is).
func ParseSignature(s string) (Signature, error) {
	name, data, err := splitNameData(s)
	if err != nil {
		return Signature{}, fmt.Errorf("parsing signature %q: %w: %w", s, ErrInvalidSignature, err)
	}
	raw, err := decodeBase64(data)
	if err != nil {
		return Signature{}, fmt.Errorf("parsing signature %q: %w: %w", s, ErrInvalidSignature, err)
	}
	if len(raw) != ed25519.SignatureSize {
		return Signature{}, fmt.Errorf("parsing signature %q: %w: decodes to %d bytes, want %d",
			s, ErrInvalidSignature, len(raw), ed25519.SignatureSize)
	}
	return Signature{Name: name, Sig: raw}, nil
}

// String returns the signature in Nix's form "<keyname>:<base64>".
func (s Signature) String() string {
	return s.Name + ":" + base64.StdEncoding.EncodeToString(s.Sig)
}

// Verify reports whether sig is a valid signature of fingerprint by pub:
// its key name must be pub.Name and it must verify. Malformed input gives
// false.
func Verify(pub PublicKey, fingerprint []byte, sig string) bool {
	s, err := ParseSignature(sig)
	if err != nil || s.Name != pub.Name || len(pub.Key) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(pub.Key, fingerprint, s.Sig)
}

// PublicKeys is a set of trusted keys by name, like Nix's PublicKeys (built
// from trusted-public-keys). Build it with NewPublicKeys or ParsePublicKeys.
type PublicKeys map[string]PublicKey

// NewPublicKeys returns the set of keys; when two keys share a name the
// first is kept, as Nix does.
func NewPublicKeys(keys ...PublicKey) PublicKeys {
	ks := make(PublicKeys, len(keys))
	for _, k := range keys {
		if _, ok := ks[k.Name]; !ok {
			ks[k.Name] = k
		}
	}
	return ks
}

// ParsePublicKeys parses a white-space separated list of public keys, the
// format of nix.conf's trusted-public-keys.
func ParsePublicKeys(list string) (PublicKeys, error) {
	var keys []PublicKey
	for _, f := range strings.Fields(list) {
		k, err := ParsePublicKey(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return NewPublicKeys(keys...), nil
}

// Verify checks one signature as Nix's verifyDetached does: (false, nil)
// when no key in ks has the signature's name, an error wrapping
// ErrInvalidSignature when one does but the signature is malformed, else
// whether it verifies.
func (ks PublicKeys) Verify(fingerprint []byte, sig string) (bool, error) {
	name, _, _ := strings.Cut(sig, ":")
	pub, ok := ks[name]
	if !ok {
		return false, nil
	}
	s, err := ParseSignature(sig)
	if err != nil {
		return false, err
	}
	return len(pub.Key) == ed25519.PublicKeySize && ed25519.Verify(pub.Key, fingerprint, s.Sig), nil
}

// CountValid returns how many distinct signatures in sigs verify under ks,
// as Nix's ValidPathInfo::checkSignatures counts them for require-sigs and
// --sigs-needed (the content-addressed exemption is the caller's). The error
// joins the errors of malformed signatures from trusted key names; such
// signatures do not count.
func (ks PublicKeys) CountValid(fingerprint []byte, sigs []string) (int, error) {
	sigs = slices.Clone(sigs)
	slices.Sort(sigs)
	var (
		n    int
		errs []error
	)
	for _, s := range slices.Compact(sigs) {
		ok, err := ks.Verify(fingerprint, s)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}
