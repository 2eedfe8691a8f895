package redact_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/redact"
)

// FuzzString checks that String never panics, and that what it returns
// has nothing left to redact.
func FuzzString(f *testing.F) {
	text, body, key := testKey(f)
	for _, s := range []string{
		"", text, body, "x %2", "%%%", "http://a:b@c", "://@", "secret-key=", "secret-key=" + body,
		awsSecret, "s3://" + awsID + ":" + awsSecret + "@h", url.QueryEscape(text),
		key.Sign([]byte("x")), strings.ReplaceAll(text, "+", " ") + "  =", "a/" + body[:86] + "/b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := redact.String(s)
		if again := redact.String(out); again != out {
			t.Errorf("String(%q) = %q, but String of that is %q", s, out, again)
		}
	})
}

// separators may stand around key text in a message.
const separators = " \"'\n/:=(,-.\t<>[]{}"

// FuzzSecretKey puts a real secret key, in one of the forms a message may
// quote it, between any two strings (with a separator), and checks that no
// 12 characters of it are left.
func FuzzSecretKey(f *testing.F) {
	f.Add([]byte("seed"), "nixbucket: ", ": no such file", uint8(0), uint8(0), uint8(0))
	f.Add([]byte("x"), `{"path":`, `}`, uint8(3), uint8(1), uint8(1))
	f.Add([]byte("y"), "lookup tcp", ": unknown port", uint8(1), uint8(4), uint8(0))
	f.Add([]byte("z"), "a b c", "d e f", uint8(7), uint8(0), uint8(0))
	f.Add([]byte("w"), "%2", "%3D", uint8(5), uint8(9), uint8(10))
	f.Fuzz(func(t *testing.T, seed []byte, prefix, suffix string, form, sepA, sepB uint8) {
		s := sha256.Sum256(seed)
		body := base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(s[:]))
		nopad := strings.TrimRight(body, "=")
		forms := []string{
			"fuzz-1:" + body,
			body,
			"fuzz-1:" + nopad,
			nopad,
			url.QueryEscape("fuzz-1:" + body),
			url.PathEscape("fuzz-1:" + body),
			strings.ReplaceAll("fuzz-1:"+body, "+", " "),
			strings.ReplaceAll(nopad, "+", " "),
		}
		kt := forms[int(form)%len(forms)]
		in := prefix + string(separators[int(sepA)%len(separators)]) + kt + string(separators[int(sepB)%len(separators)]) + suffix
		out := redact.String(in)
		for _, secret := range []string{body, kt, strings.ReplaceAll(body, "+", " ")} {
			for i := 0; i+12 <= len(secret); i++ {
				if frag := secret[i : i+12]; strings.Contains(out, frag) && !strings.Contains(prefix+suffix, frag) {
					t.Fatalf("String(%q)\n = %q\nhas %q of the key", in, out, frag)
				}
			}
		}
	})
}

// FuzzKnown checks that a Redactor leaves no 12 characters of a secret it
// knows, wherever the secret stands.
func FuzzKnown(f *testing.F) {
	f.Add("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY=", "\n")
	f.Add("0123456789abcdef", "%2", "==")
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaa", "aaaa", "aaaa")
	f.Fuzz(func(t *testing.T, secret, prefix, suffix string) {
		secret = strings.TrimSpace(secret)
		if len(secret) < 12 || strings.Contains(secret, ":") || strings.Contains(secret, " ") {
			return
		}
		r := redact.New(secret)
		in := prefix + secret + suffix
		out := r.String(in)
		if strings.Contains(out, secret) {
			t.Fatalf("String(%q) = %q has the secret", in, out)
		}
	})
}
