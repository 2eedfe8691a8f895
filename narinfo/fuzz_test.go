package narinfo_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/narinfo"
)

// FuzzParse checks that Parse never panics, that every content error is a
// *ParseError, and that parse → String → parse is stable.
func FuzzParse(f *testing.F) {
	for _, tc := range validCases {
		f.Add(strings.ReplaceAll(tc.in, "@SD@", "/nix/store"))
	}
	for _, tc := range errorCases {
		f.Add(strings.ReplaceAll(tc.in, "@SD@", "/nix/store"))
	}
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.narinfo"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		opt := narinfo.WithStoreDir("/nix/store")
		n, err := narinfo.ParseString(in, opt)
		if err != nil {
			var pe *narinfo.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is a %T, want *narinfo.ParseError", err, err)
			}
			return
		}
		out := n.String()
		n2, err := narinfo.ParseString(out, opt)
		if err != nil {
			t.Fatalf("output of String does not parse: %v\ninput: %q\noutput: %q", err, in, out)
		}
		if !maps.Equal(summary(n), summary(n2)) {
			t.Fatalf("reparse differs:\n%v\n%v", summary(n), summary(n2))
		}
		if out2 := n2.String(); out2 != out {
			t.Fatalf("String not stable:\n%q\n%q", out, out2)
		}
		if _, err := n.Fingerprint(); err != nil {
			t.Fatalf("Fingerprint of a parsed narinfo: %v", err)
		}
	})
}
