package httpcache

import (
	"strings"
	"testing"
)

func TestParseNetrc(t *testing.T) {
	for _, tc := range []struct {
		name, text, host string
		want             Credentials
		ok               bool
		err              string
	}{
		{name: "one line", text: "machine cache.example.org login ci password s3cret\n", host: "cache.example.org", want: Credentials{"ci", "s3cret"}, ok: true},
		{name: "several lines and comments", text: "# ci\nmachine other login a password b\n\nmachine cache\n  login ci\n  password tok # the token\n", host: "cache", want: Credentials{"ci", "tok"}, ok: true},
		{name: "first entry wins", text: "machine h login a password 1 machine h login b password 2", host: "h", want: Credentials{"a", "1"}, ok: true},
		{name: "default", text: "machine other password x\ndefault login d password dp\n", host: "h", want: Credentials{"d", "dp"}, ok: true},
		{name: "machine before default", text: "default password dp machine h password hp", host: "h", want: Credentials{"", "hp"}, ok: true},
		{name: "quoted", text: `machine h login "a b" password "p\"q\\r"`, host: "h", want: Credentials{"a b", `p"q\r`}, ok: true},
		{name: "account ignored", text: "machine h account x password p", host: "h", want: Credentials{"", "p"}, ok: true},
		{name: "none", text: "machine other password x", host: "h"},
		{name: "empty", text: "", host: "h"},
		{name: "port is not part of the name", text: "machine h:8080 password x", host: "h"},
		{name: "dangling password", text: "machine h password", host: "h", err: "password without a value"},
		{name: "dangling machine", text: "machine", host: "h", err: "machine without a name"},
		{name: "login outside", text: "login x", host: "h", err: "outside"},
		{name: "unknown token", text: "machine h passwd x", host: "h", err: "unexpected token 3"},
		{name: "unterminated", text: `machine h password "abc`, host: "h", err: "unterminated"},
		{name: "macdef", text: "macdef init\ncd /\n\nmachine h password p", host: "h", err: "macdef"},
		{name: "two defaults", text: "default password a default password b", host: "h", err: "two default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseNetrc(tc.text, tc.host)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || ok != tc.ok || got != tc.want {
				t.Fatalf("got %q %v %v, want %q %v", got, ok, err, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseNetrc checks that ParseNetrc never panics, and that its errors
// never quote the text (which holds passwords).
func FuzzParseNetrc(f *testing.F) {
	for _, s := range []string{"machine h login l password p", "default password d", `machine h password "q\"x"`, "# c\nmachine h\n", "macdef x", "\"", "machine"} {
		f.Add(s, "h")
	}
	f.Fuzz(func(t *testing.T, text, host string) {
		c, ok, err := ParseNetrc(text, host)
		if err != nil {
			if ok || c != (Credentials{}) {
				t.Fatalf("error %v with credentials", err)
			}
			for _, tok := range strings.Fields(text) {
				if len(tok) >= 8 && !strings.Contains("machine default login password account macdef", tok) && strings.Contains(err.Error(), tok) {
					t.Fatalf("error %q quotes the text's %q", err, tok)
				}
			}
			return
		}
		if !ok && c != (Credentials{}) {
			t.Fatalf("credentials %q without ok", c)
		}
	})
}
