package signing

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxKeyFileSize bounds what ReadSecretKeyFile reads: a key file is about
// 100 bytes, so anything much larger is not one.
const maxKeyFileSize = 64 << 10

// ReadSecretKeyFile reads and parses a secret key file as written by
// nix-store --generate-binary-cache-key (or GenerateSecretKey and Encode).
// Errors name the file and what is wrong, never the file's content; and
// when path itself looks like key text (the key given where its file name
// belongs), they do not show path either (see SafeKeyPath).
func ReadSecretKeyFile(path string) (*SecretKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, keyFileError(path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, keyFileError(path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, keyFileError(path, fmt.Errorf("%w: larger than %d bytes, not a key file", ErrInvalidKey, maxKeyFileSize))
	}
	k, err := ParseSecretKey(string(b))
	if err != nil {
		return nil, keyFileError(path, err)
	}
	return k, nil
}

// keyFileError wraps err as "reading secret key file <path>: …", or, when
// path looks like key text, with a note instead of path. The path inside an
// *fs.PathError (os.Open's "open <path>: …") is dropped, so that it shows
// only in its safe form; the cause (fs.ErrNotExist, …) is kept for errors.Is.
func keyFileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if looksLikeKeyText(path) {
		return fmt.Errorf("reading secret key file: the file name given looks like key text (not shown);"+
			" give the key's file, or put its text in NIXBUCKET_SECRET_KEY: %w", err)
	}
	return fmt.Errorf("reading secret key file %s: %w", path, err)
}

// SafeKeyPath returns path for a message or a log, or "(key text, not
// shown)" when path looks like key text rather than a file name:
// "<name>:<base64>" with at least 43 base64 characters (a 32-byte key or
// more) before any '=', or 80 with no name; white space is allowed (a space
// counts as the '+' a URL query decodes to it).
func SafeKeyPath(path string) string {
	if looksLikeKeyText(path) {
		return "(key text, not shown)"
	}
	return path
}

func looksLikeKeyText(s string) bool {
	need := 80
	if _, data, ok := strings.Cut(s, ":"); ok {
		s, need = data, 43
	}
	n := 0
	for i := range len(s) {
		switch c := s[i]; {
		case strings.IndexByte(stdAlphabet, c) >= 0, c == ' ':
			n++
		case c == '=':
			return n >= need // Nix's decoder stops there: what follows is not key
		case c == '\n', c == '\r', c == '\t':
		default:
			return false
		}
	}
	return n >= need
}
