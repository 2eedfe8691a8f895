package httpcache

import (
	"fmt"
	"os"
	"strings"
)

// Credentials are a login and password from a netrc file.
type Credentials struct {
	Login, Password string
}

// String hides the password.
func (c Credentials) String() string { return c.Login + ":[password]" }

// ReadNetrc returns the credentials the netrc file at path gives host (a
// host name, without port, as curl and so Nix match it), falling back to
// its default entry; ok is false when it has none. A missing file is
// not an error when optional.
func ReadNetrc(path, host string, optional bool) (c Credentials, ok bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if optional && os.IsNotExist(err) {
			return Credentials{}, false, nil
		}
		return Credentials{}, false, fmt.Errorf("reading netrc file: %w", err)
	}
	c, ok, err = ParseNetrc(string(data), host)
	if err != nil {
		return Credentials{}, false, fmt.Errorf("netrc file %s: %w", path, err)
	}
	return c, ok, nil
}

// ParseNetrc reads netrc text (machine NAME, default, login, password,
// account, macdef; tokens separated by any white space, # comments at the
// start of a token to the end of the line) and returns the credentials of
// the first machine entry named host, else of the default entry. Errors
// never quote the text: it holds passwords.
func ParseNetrc(text, host string) (Credentials, bool, error) {
	toks, err := netrcTokens(text)
	if err != nil {
		return Credentials{}, false, err
	}
	var (
		found, def Credentials
		haveFound  bool
		haveDef    bool
		cur        *Credentials
		curIsHost  bool
	)
	flush := func() {
		if cur == nil {
			return
		}
		if curIsHost && !haveFound {
			found, haveFound = *cur, true
		}
		cur = nil
	}
	for i := 0; i < len(toks); i++ {
		switch toks[i] {
		case "machine":
			flush()
			if i+1 >= len(toks) {
				return Credentials{}, false, fmt.Errorf("machine without a name")
			}
			i++
			cur, curIsHost = &Credentials{}, toks[i] == host
		case "default":
			flush()
			if haveDef {
				return Credentials{}, false, fmt.Errorf("two default entries")
			}
			cur, curIsHost, haveDef = &def, false, true
		case "login", "password", "account":
			if i+1 >= len(toks) {
				return Credentials{}, false, fmt.Errorf("%s without a value", toks[i])
			}
			if cur == nil {
				return Credentials{}, false, fmt.Errorf("%s outside a machine or default entry", toks[i])
			}
			switch toks[i] {
			case "login":
				cur.Login = toks[i+1]
			case "password":
				cur.Password = toks[i+1]
			}
			i++
		case "macdef":
			return Credentials{}, false, fmt.Errorf("macdef is not supported")
		default:
			return Credentials{}, false, fmt.Errorf("unexpected token %d (not machine, default, login, password or account)", i+1)
		}
	}
	flush()
	if haveFound {
		return found, true, nil
	}
	if haveDef {
		return def, true, nil
	}
	return Credentials{}, false, nil
}

// netrcTokens splits netrc text into tokens: runs of non-space bytes, or
// "quoted strings" with \" and \\ escapes; # starts a comment to the end
// of its line where a token starts.
func netrcTokens(text string) ([]string, error) {
	var toks []string
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(text) {
					return nil, fmt.Errorf("unterminated quoted string")
				}
				if text[i] == '"' {
					i++
					break
				}
				if text[i] == '\\' && i+1 < len(text) {
					i++
				}
				b.WriteByte(text[i])
				i++
			}
			toks = append(toks, b.String())
		default:
			j := i
			for j < len(text) && !strings.ContainsRune(" \t\n\r\f\v", rune(text[j])) {
				j++
			}
			toks = append(toks, text[i:j])
			i = j
		}
	}
	return toks, nil
}
