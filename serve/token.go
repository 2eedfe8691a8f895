package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Token is the secret a pusher presents to write to the cache (serve
// --push-token-file): as the password of HTTP basic authentication, under
// any user name (what Nix sends from its netrc-file), or as a bearer
// token. It never prints: String and LogValue say only that it is set.
type Token struct {
	digest [32]byte // SHA-256 of the token: compared in constant time, whatever the lengths
}

// MinTokenLength is the shortest token accepted, in bytes.
const MinTokenLength = 16

// NewToken makes a Token of the text s, which must be at least
// MinTokenLength bytes with no white space or control bytes inside.
func NewToken(s string) (*Token, error) {
	if len(s) < MinTokenLength {
		return nil, fmt.Errorf("the push token is %d bytes; use at least %d (e.g. openssl rand -hex 32)", len(s), MinTokenLength)
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c == 0x7f {
			return nil, errors.New("the push token has white space or a control byte inside; use letters and digits (e.g. openssl rand -hex 32)")
		}
	}
	return &Token{digest: sha256.Sum256([]byte(s))}, nil
}

// LoadToken reads the token from the file at path: its one line, the
// trailing newline (LF or CRLF) trimmed. It also returns the token's text,
// for the caller's redactor.
func LoadToken(path string) (*Token, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading the push token: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	t, err := NewToken(s)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return t, s, nil
}

// String says that a token is set, never what it is.
func (t *Token) String() string { return "[push token]" }

// Matches reports, in constant time, whether s is the token.
func (t *Token) Matches(s string) bool {
	d := sha256.Sum256([]byte(s))
	return subtle.ConstantTimeCompare(d[:], t.digest[:]) == 1
}

// Presented reports whether r carries the token: as the password of HTTP
// basic authentication (any user name), or as "Authorization: Bearer".
func (t *Token) Presented(r *http.Request) bool {
	if _, password, ok := r.BasicAuth(); ok {
		return t.Matches(password)
	}
	auth := r.Header.Get("Authorization")
	if len(auth) > len("Bearer ") && strings.EqualFold(auth[:len("Bearer ")], "Bearer ") {
		return t.Matches(strings.TrimSpace(auth[len("Bearer "):]))
	}
	return false
}
