package signing

import (
	"fmt"
	"io"
	"os"
)

// maxKeyFileSize bounds what ReadSecretKeyFile reads: a key file is about
// 100 bytes, so anything much larger is not one.
const maxKeyFileSize = 64 << 10

// ReadSecretKeyFile reads and parses a secret key file as written by
// nix-store --generate-binary-cache-key (or GenerateSecretKey and Encode).
// Errors name the file and what is wrong, never the file's content.
func ReadSecretKeyFile(path string) (*SecretKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading secret key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading secret key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("reading secret key file %s: %w: larger than %d bytes, not a key file", path, ErrInvalidKey, maxKeyFileSize)
	}
	k, err := ParseSecretKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("reading secret key file %s: %w", path, err)
	}
	return k, nil
}
