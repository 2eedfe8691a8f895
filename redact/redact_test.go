package redact_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/redact"
	"github.com/nixbucket/nixbucket/signing"
)

// testKey returns a Nix secret key's text "redact-1:<base64>" whose base64
// has both '+' and '/', so that every escape of them is exercised; the key
// is derived from a fixed seed, so the table below is the same every run.
func testKey(t testing.TB) (text, body string, key *signing.SecretKey) {
	t.Helper()
	for i := 0; ; i++ {
		seed := sha256.Sum256(fmt.Appendf(nil, "redact-%d", i))
		body = base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed[:]))
		if strings.Contains(body, "+") && strings.Contains(body, "/") {
			break
		}
	}
	text = "redact-1:" + body
	key, err := signing.ParseSecretKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return text, body, key
}

// keyWith returns the text of a secret key named redact-2 whose base64
// has sub.
func keyWith(t testing.TB, sub string) string {
	t.Helper()
	for i := 0; ; i++ {
		seed := sha256.Sum256(fmt.Appendf(nil, "redact-2-%d", i))
		body := base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed[:]))
		if strings.Contains(body, sub) {
			return "redact-2:" + body
		}
	}
}

// awsSecret is shaped like an AWS secret access key (AWS's documentation
// example), awsID like its access key id.
const (
	awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	awsID     = "AKIAIOSFODNN7EXAMPLE"
)

// TestString checks what String removes — a Nix secret key in every form
// a message may quote it, an AWS secret, a URL's password — and what it
// leaves alone, above all what has a secret key's shape but is public: a
// signature, a public key, hashes.
func TestString(t *testing.T) {
	t.Parallel()
	text, body, key := testKey(t)
	nopad := strings.TrimRight(body, "=")
	pub := key.PublicKey().String()
	sig := key.Sign([]byte("1;/nix/store/x;sha256:y;1;"))
	slashed := keyWith(t, "//")
	m := redact.Mask
	for _, tc := range []struct{ name, in, want string }{
		{"key text", text, "redact-1:" + m},
		{"base64 alone", body, m},
		{"no padding", "redact-1:" + nopad + " does not exist", "redact-1:" + m + " does not exist"},
		{"quoted", `root name "` + text + `": invalid`, `root name "redact-1:` + m + `": invalid`},
		{"Go-quoted in a log", `level=ERROR err="open ` + text + `: no such file"`, `level=ERROR err="open redact-1:` + m + `: no such file"`},
		{"after a slash", "lookup tcp/" + body + ": unknown port", "lookup tcp/" + m + ": unknown port"},
		{"a path component", "/tmp/" + nopad + "/x", "/tmp/" + m + "/x"},
		{"a URL parameter", "file:///c?key=" + text + "&x=1", "file:///c?key=redact-1:" + m + "&x=1"},
		{"query-escaped", "s3://b?key=" + url.QueryEscape(text), "s3://b?key=redact-1%3A" + m},
		{"path-escaped", "s3://b/" + url.PathEscape(text) + "/x", "s3://b/redact-1:" + m + "/x"},
		{"'+' decoded to ' '", `value "` + strings.ReplaceAll(text, "+", " ") + `"`, `value "redact-1:` + m + `"`},
		{"JSON", `{"path":"` + text + `"}`, `{"path":"redact-1:` + m + `"}`},
		{"twice", text + " " + text, "redact-1:" + m + " redact-1:" + m},
		{"'//' cleaned to '/'", "/nix/store/" + filepath.Clean(slashed) + " does not exist", "/nix/store/redact-2:" + m + " does not exist"},
		{"secret-key= with key text that is no key", "s3://b?secret-key=x-1:" + body[:50] + "&r=1", "s3://b?secret-key=" + m + "&r=1"},
		{"AWS secret", "secret " + awsSecret + " and id " + awsID, "secret " + m + " and id " + awsID},
		{"AWS secret as a path component", "roots/" + strings.ReplaceAll(awsSecret, "/", "x") + "/1.json", "roots/" + m + "/1.json"},
		{"AWS secret in an assignment", "AWS_SECRET_ACCESS_KEY=" + awsSecret, "AWS_SECRET_ACCESS_KEY=" + m},
		{"URL password", "GET http://user:hunter2@127.0.0.1:9000/b/k failed", "GET http://user:xxxxx@127.0.0.1:9000/b/k failed"},
		{"URL password, cleaned", "/nix/store/x-http:/user:hunter2@host/x", "/nix/store/x-http:/user:xxxxx@host/x"},
		{"URL password, escaped URL", "endpoint=http%3A%2F%2Fuser%3Ahunter2%40host", "endpoint=http%3A%2F%2Fuser%3A" + redact.PasswordMask + "%40host"},
		{"URL with AWS credentials", "s3://" + awsID + ":" + awsSecret + "@host/b", "s3://" + awsID + ":" + m + "@host/b"},

		{"public key", "trusted-public-keys = " + pub, ""},
		{"signature", `"signatures":["` + sig + `"]`, ""},
		{"signature without name", strings.TrimPrefix(sig, "redact-1:"), ""},
		{"store path", "/nix/store/0c0ji5x5g5fbsa1wzk7kpx8kzb0gsjcd-hello-2.12.1", ""},
		{"SRI hash", "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", ""},
		{"nix32 hash", "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", ""},
		{"a relative path of 40 characters", "open TestPublishBadInput123456789/001/missing: no such file", ""},
		{"hex digest as a path component", "cache/0123456789abcdef0123456789abcdef01234567/x", ""},
		{"git commit", "_releases/0123456789abcdef0123456789abcdef01234567/x", ""},
		{"URL without password", "http://user@host/x", ""},
		{"URL already redacted", "http://user:xxxxx@host/x", ""},
		{"secret-key= a file", "s3://b?secret-key=/run/keys/cache.sec&region=garage", ""},
		{"temporary directory", "/tmp/TestPushBadInput1234567/001/cache/nar", ""},
		{"short", "a:b", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if got := redact.String(tc.in); got != want {
				t.Errorf("String(%q)\n = %q\nwant %q", tc.in, got, want)
			}
		})
	}
}

// TestRedactorKnown checks that a Redactor removes fragments of the
// secrets it knows — a prefix, a suffix, a middle, escaped — which String
// alone cannot recognise, and nothing else.
func TestRedactorKnown(t *testing.T) {
	t.Parallel()
	text, body, _ := testKey(t)
	garbage := "not-a-key:" + body[:60]
	r := redact.New(text, awsSecret, garbage, "shortpw1")
	args := redact.New()
	args.SecretsIn("file://" + text + "?x=1") // parsed as host "redact-1:X", path "/…"
	m := redact.Mask
	for _, tc := range []struct {
		name   string
		r      *redact.Redactor
		in     string
		want   string
		pasted bool
	}{
		{"prefix", r, "got " + body[:20] + "…", "got " + m + "…", false},
		{"suffix", r, "got …" + body[70:], "got …" + m, false},
		{"middle, escaped", r, "got " + url.QueryEscape(body[30:60]), "got " + m, true},
		{"middle, '+' as ' '", r, "got " + strings.ReplaceAll(body[:40], "+", " "), "got " + m, true},
		{"AWS secret cut", r, "key " + awsSecret[:30], "key " + m, false},
		{"AWS secret with a '/' in a path", r, "roots/" + awsSecret + "/1.json", m + ".json", false},
		{"garbage key", r, "parsing " + body[5:60] + " failed", "parsing " + m + " failed", false},
		{"short secret whole", r, "password shortpw1 rejected", "password " + m + " rejected", false},
		{"unrelated text", r, "pushed 3 paths to s3://b?endpoint=127.0.0.1:9000", "", false},
		{"from the arguments", args, `open "/` + body[1:] + `": no such file`, `open "` + m + `": no such file`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.String(tc.in)
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if tc.pasted {
				// The mask covers the run; what is around it may differ by
				// escape: check only that no fragment is left.
				assertNoFragment(t, got, body)
				if !strings.Contains(got, m) {
					t.Errorf("String(%q) = %q, no mask", tc.in, got)
				}
				return
			}
			if got != want {
				t.Errorf("String(%q)\n = %q\nwant %q", tc.in, got, want)
			}
		})
	}
}

// assertNoFragment fails if out has 12 characters in a row of secret, raw
// or with its escapes decoded.
func assertNoFragment(t testing.TB, out, secret string) {
	t.Helper()
	forms := []string{out, strings.ReplaceAll(out, " ", "+")}
	if d, err := url.QueryUnescape(out); err == nil {
		forms = append(forms, d)
	}
	if d, err := url.PathUnescape(out); err == nil {
		forms = append(forms, d)
	}
	for _, f := range forms {
		for i := 0; i+12 <= len(secret); i++ {
			if strings.Contains(f, secret[i:i+12]) {
				t.Fatalf("output %q has %q of the secret", out, secret[i:i+12])
			}
		}
	}
}

// TestPublicTextKept checks that public key, signature and SRI hash text is
// never taken for a secret, whatever '/'s its base64 holds: before padded
// base64 was recognised, one public key in about thirty was masked as an
// AWS secret (a '/' near one end left a 40-character "path component").
func TestPublicTextKept(t *testing.T) {
	masked := 0
	for i := range 3000 {
		seed := sha256.Sum256(fmt.Appendf(nil, "public-%d", i))
		priv := ed25519.NewKeyFromSeed(seed[:])
		pub := "cache-1:" + base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
		sig := "cache-1:" + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte("fingerprint")))
		sri := "sha256-" + base64.StdEncoding.EncodeToString(seed[:])
		line := "trusted-public-keys = " + pub + "\nSig: " + sig + "\nhash " + sri + "\n"
		if got := redact.String(line); got != line {
			masked++
			if masked <= 3 {
				t.Errorf("String changed public text:\n%s\ninto\n%s", line, got)
			}
		}
	}
	if masked > 0 {
		t.Errorf("%d of 3000 public keys, signatures or hashes were masked", masked)
	}
}
