package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// ErrInvalidKey is wrapped by the errors of ParseSecretKey, ParsePublicKey
// and GenerateSecretKey about malformed keys or names.
var ErrInvalidKey = errors.New("invalid key")

// SecretKey is a named ed25519 signing key. Its zero value is not usable;
// get one from GenerateSecretKey, ParseSecretKey or ReadSecretKeyFile.
//
// It never prints its secret (see the package documentation).
type SecretKey struct {
	name string
	// priv returns the key. It is a closure because no printer can reach
	// what a closure captures: fmt, which prints unexported fields and
	// dereferences pointers by reflection, shows a func as an address.
	priv func() ed25519.PrivateKey
}

func newSecretKey(name string, priv ed25519.PrivateKey) *SecretKey {
	return &SecretKey{name: name, priv: func() ed25519.PrivateKey { return priv }}
}

// PublicKey is a named ed25519 public key, as listed in Nix's
// trusted-public-keys.
type PublicKey struct {
	// Name is the key name, e.g. cache.example.org-1.
	Name string
	// Key is the 32-byte ed25519 public key.
	Key ed25519.PublicKey
}

// GenerateSecretKey returns a new random key named name. The name must be
// non-empty and contain neither ':' nor white space (which would break the
// text form and nix.conf's space-separated key lists).
func GenerateSecretKey(name string) (*SecretKey, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	return newSecretKey(name, priv), nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the key name is empty", ErrInvalidKey)
	case strings.ContainsAny(name, ": \t\r\n\v\f"):
		return fmt.Errorf("%w: key name %q contains ':' or white space", ErrInvalidKey, name)
	}
	return nil
}

// ParseSecretKey parses a secret key in Nix's text form "<name>:<base64 of
// 64 bytes>", as nix-store --generate-binary-cache-key writes it; white space
// around it is ignored. It checks that the public half matches the seed.
// Its errors never contain any part of text.
func ParseSecretKey(text string) (*SecretKey, error) {
	name, data, err := splitNameData(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("parsing secret key: %w: %w", ErrInvalidKey, err)
	}
	raw, err := decodeBase64(data)
	if err != nil {
		return nil, fmt.Errorf("parsing secret key: %w: %w", ErrInvalidKey, err)
	}
	if len(raw) != ed25519.PrivateKeySize {
		hint := ""
		if len(raw) == ed25519.PublicKeySize {
			hint = " (is this the public key?)"
		}
		return nil, fmt.Errorf("parsing secret key: %w: decodes to %d bytes, want %d%s",
			ErrInvalidKey, len(raw), ed25519.PrivateKeySize, hint)
	}
	priv := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if !bytes.Equal(priv[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
		return nil, fmt.Errorf("parsing secret key: %w: the public half does not match the seed", ErrInvalidKey)
	}
	return newSecretKey(name, priv), nil
}

// ParseSecretKeys parses one or more secret keys in Nix's text form, one
// per line (blank lines are skipped), as NIXBUCKET_SECRET_KEY may hold
// them. Two keys with the same name are an error: Nix would keep only one
// of their signatures. Its errors name the line, never its content.
func ParseSecretKeys(text string) ([]*SecretKey, error) {
	var keys []*SecretKey
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, err := ParseSecretKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("parsing secret key: %w: no key", ErrInvalidKey)
	}
	if err := CheckDistinct(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// CheckDistinct returns an error if two of keys have the same name.
func CheckDistinct(keys []*SecretKey) error {
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.name] {
			return fmt.Errorf("%w: two secret keys are named %q; each signing key needs its own name", ErrInvalidKey, k.name)
		}
		seen[k.name] = true
	}
	return nil
}

// Name returns the key name.
func (k *SecretKey) Name() string { return k.name }

// PublicKey returns the public half of k, with k's name.
func (k *SecretKey) PublicKey() PublicKey {
	pub := k.priv().Public().(ed25519.PublicKey)
	return PublicKey{Name: k.name, Key: bytes.Clone(pub)}
}

// Sign signs a fingerprint (see narinfo.Fingerprint) and returns the
// signature in Nix's form "<keyname>:<base64>". Ed25519 is deterministic: the
// same key and fingerprint always give the same string, the one Nix gives.
func (k *SecretKey) Sign(fingerprint []byte) string {
	return k.name + ":" + base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv(), fingerprint))
}

// Encode returns the secret key in Nix's text form "<name>:<base64>",
// without a trailing newline, as nix-store --generate-binary-cache-key writes
// it. It reveals the secret: use it only to write the key file.
func (k *SecretKey) Encode() string {
	return k.name + ":" + base64.StdEncoding.EncodeToString(k.priv())
}

// String returns the key name only, never the secret.
func (k SecretKey) String() string { return k.name }

// GoString returns a Go-like form showing the key name only.
func (k SecretKey) GoString() string { return fmt.Sprintf("signing.SecretKey(%q)", k.name) }

// Format implements fmt.Formatter so that no verb (%x, %d, …) can print the
// secret: %#v gives GoString, %q the quoted name, every other verb the name.
func (k SecretKey) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, k.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", k.name)
	default:
		fmt.Fprint(f, k.name)
	}
}

// LogValue implements slog.LogValuer: a key logs as its name only.
func (k SecretKey) LogValue() slog.Value { return slog.StringValue(k.name) }

// ParsePublicKey parses a public key in Nix's text form "<name>:<base64 of
// 32 bytes>"; white space around it is ignored.
func ParsePublicKey(text string) (PublicKey, error) {
	name, data, err := splitNameData(strings.TrimSpace(text))
	if err != nil {
		// Not quoted: a secret key pasted in the wrong place must not leak.
		return PublicKey{}, fmt.Errorf("parsing public key: %w: %w", ErrInvalidKey, err)
	}
	raw, err := decodeBase64(data)
	if err != nil {
		return PublicKey{}, fmt.Errorf("parsing public key %q: %w: %w", name, ErrInvalidKey, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		hint := ""
		if len(raw) == ed25519.PrivateKeySize {
			hint = " (is this a secret key? keep it secret)"
		}
		return PublicKey{}, fmt.Errorf("parsing public key %q: %w: decodes to %d bytes, want %d%s",
			name, ErrInvalidKey, len(raw), ed25519.PublicKeySize, hint)
	}
	return PublicKey{Name: name, Key: raw}, nil
}

// String returns the key in Nix's text form "<name>:<base64>", as written in
// nix.conf's trusted-public-keys.
func (p PublicKey) String() string {
	return p.Name + ":" + base64.StdEncoding.EncodeToString(p.Key)
}
