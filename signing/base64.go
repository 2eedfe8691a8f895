package signing

import (
	"errors"
	"fmt"
	"strings"
)

const stdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// decodeBase64 decodes s as Nix's base64Decode does: standard alphabet,
// '\n' skipped, decoding stops at the first '=', leftover bits dropped. An
// invalid character is reported by its offset only, never by its value, so
// that an error about a secret key cannot leak part of it.
func decodeBase64(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)*3/4)
	var d, bits uint
	for i := range len(s) {
		c := s[i]
		if c == '=' {
			break
		}
		if c == '\n' {
			continue
		}
		digit := strings.IndexByte(stdAlphabet, c)
		if digit < 0 {
			return nil, fmt.Errorf("invalid base64 character at offset %d", i)
		}
		d = d<<6 | uint(digit)
		bits += 6
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(d>>bits))
			d &= 1<<bits - 1
		}
	}
	return out, nil
}

// splitNameData splits "<name>:<data>" at the first ':' (Nix's
// parseColonBase64); both parts must be non-empty. The error never quotes s.
func splitNameData(s string) (name, data string, err error) {
	name, data, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return "", "", errors.New("want <name>:<base64>, found no ':'")
	case name == "":
		return "", "", errors.New("want <name>:<base64>, the name is empty")
	case data == "":
		return "", "", errors.New("want <name>:<base64>, the base64 part is empty")
	}
	return name, data, nil
}
