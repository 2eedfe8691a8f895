package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestShellQuote checks that a quoted line is read back by a real shell
// (sh -c) as the same words, and that plain words stay unquoted.
func TestShellQuote(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		plain bool // printed as they are
	}{
		{[]string{"nixbucket", "push", "--cache", "file:///tmp/c", "/nix/store/abc-x"}, true},
		{[]string{"nixbucket", "serve", "--cache", "s3://demo?endpoint=http://127.0.0.1:9000&region=garage", "--listen", "127.0.0.1:8080"}, false},
		{[]string{"it's", "two words", "", "$HOME", "`id`", "a;b", "a|b", "*", "~", "#x", "tab\there", "new\nline", "back\\slash", `"q"`}, false},
		{[]string{"nix", "build", "nixpkgs#hello"}, false},
	} {
		line := shellQuote(tc.args...)
		if got := line == strings.Join(tc.args, " "); got != tc.plain {
			t.Errorf("shellQuote(%q) = %s: printed as is %v, want %v", tc.args, line, got, tc.plain)
		}
		got, err := exec.Command("sh", "-c", "for a in "+line+"; do printf '%s\\0' \"$a\"; done").Output()
		if err != nil {
			t.Fatalf("sh reading %s: %v", line, err)
		}
		words := strings.Split(string(got), "\x00")
		words = words[:len(words)-1]
		if !slices.Equal(words, tc.args) {
			t.Errorf("sh read %s as %q, want %q", line, words, tc.args)
		}
	}
}
