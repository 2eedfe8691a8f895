package serve

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	const tok = "0123456789abcdef0123"
	for _, tc := range []struct {
		name, text string
		err        string
	}{
		{"newline trimmed", tok + "\n", ""},
		{"CRLF trimmed", tok + "\r\n", ""},
		{"no newline", tok, ""},
		{"too short", "short\n", "at least 16"},
		{"empty", "\n", "at least 16"},
		{"two lines", tok + "\n" + tok + "\n", "white space"},
		{"inner space", "0123456789 abcdef0123\n", "white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			os.WriteFile(f, []byte(tc.text), 0o600)
			token, text, err := LoadToken(f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "0123456789") {
					t.Errorf("the error quotes the token: %v", err)
				}
				return
			}
			if err != nil || text != tok || !token.Matches(tok) || token.Matches(tok+"\n") || token.Matches(tok[1:]) {
				t.Fatalf("LoadToken: %q %v", text, err)
			}
			for _, s := range []string{token.String(), fmt.Sprint(token), fmt.Sprintf("%+v", *token)} {
				if strings.Contains(s, tok) {
					t.Errorf("the token prints: %s", s)
				}
			}
		})
	}
}

func TestTokenPresented(t *testing.T) {
	token, _ := NewToken("0123456789abcdef0123")
	for _, tc := range []struct {
		name, auth string
		want       bool
	}{
		{"basic, any user", basic("whoever", "0123456789abcdef0123"), true},
		{"basic, no user", basic("", "0123456789abcdef0123"), true},
		{"bearer", "Bearer 0123456789abcdef0123", true},
		{"bearer, lower case", "bearer 0123456789abcdef0123", true},
		{"basic, wrong", basic("u", "0123456789abcdef012"), false},
		{"bearer, wrong", "Bearer 0123456789abcdef01234", false},
		{"token as user", basic("0123456789abcdef0123", "x"), false},
		{"none", "", false},
		{"other scheme", "Token 0123456789abcdef0123", false},
	} {
		r, _ := http.NewRequest(http.MethodPut, "http://h/x.narinfo", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		if got := token.Presented(r); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func basic(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://h/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}
