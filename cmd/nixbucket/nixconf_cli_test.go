package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
)

// TestKeyNixconfServeWay checks what key nixconf says for an s3:// cache
// according to the nix on PATH: with this machine's real Nix (Debian's
// 2.8, built without S3 support) it says so and gives the nixbucket serve
// command, shell-quoted so that it pastes, and the http:// substituter;
// with a nix that lists an S3 store type it adds nothing; with no nix at
// all it gives the serve way as a possibility.
func TestKeyNixconfServeWay(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "cache.key")
	if code, _, stderr := runBin(t, nil, "key", "generate", "--name", "serveway-1", "--secret-key-file", file); code != 0 {
		t.Fatalf("key generate: exit %d: %s", code, stderr)
	}
	cache := "s3://demo?endpoint=http://127.0.0.1:9000&region=garage"

	// A nix that lists the S3 store, as nixpkgs' Nix does.
	s3Nix := filepath.Join(dir, "s3nix")
	os.Mkdir(s3Nix, 0o755)
	os.WriteFile(filepath.Join(s3Nix, "nix"), []byte("#!/bin/sh\ncase \"$*\" in\n"+
		"--version) echo 'nix (Nix) 2.18.1' ;;\n"+
		"*describe-stores*) echo '{\"Local Daemon Store\":{},\"S3 Binary Cache Store\":{}}' ;;\n"+
		"*) exit 1 ;;\nesac\n"), 0o755)
	// No nix at all: a PATH with sh only.
	noNix := filepath.Join(dir, "nonix")
	os.Mkdir(noNix, 0o755)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	os.Symlink(sh, filepath.Join(noNix, "sh"))

	for _, tc := range []struct {
		name  string
		path  string // PATH, "" for the test's own
		serve bool   // the serve way is given
		says  string
	}{
		{"Debian's nix-bin", "", true, "has no S3 support"},
		{"a nix with S3", s3Nix + ":" + os.Getenv("PATH"), false, ""},
		{"no nix", noNix, true, "A Nix without S3 support"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.path != "" {
				env = []string{"PATH=" + tc.path}
			}
			code, stdout, stderr := runBin(t, env, "key", "nixconf", "--cache-url", cache, "--secret-key-file", file)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if !strings.HasPrefix(stdout, "substituters = "+cache+"\ntrusted-public-keys = serveway-1:") {
				t.Errorf("the nix.conf lines changed:\n%s", stdout)
			}
			if !tc.serve {
				if len(lines) != 2 {
					t.Errorf("a nix with S3 support: want the two lines alone, got\n%s", stdout)
				}
				return
			}
			if !strings.Contains(stdout, tc.says) {
				t.Errorf("does not say %q:\n%s", tc.says, stdout)
			}
			for _, l := range lines[2:] {
				if !strings.HasPrefix(l, "# ") {
					t.Errorf("line %q after the nix.conf lines is not a nix.conf comment", l)
				}
			}
			if lines[len(lines)-1] != "# substituters = http://"+serveListen {
				t.Errorf("the last line is %q, want the http:// substituter", lines[len(lines)-1])
			}
			// The serve command, read back by a shell, is the same words.
			var command string
			for _, l := range lines {
				if c, ok := strings.CutPrefix(l, "#   nixbucket serve "); ok {
					command = "nixbucket serve " + c
				}
			}
			if command == "" {
				t.Fatalf("no nixbucket serve command:\n%s", stdout)
			}
			out, err := exec.Command("sh", "-c", "for a in "+command+"; do printf '%s\\0' \"$a\"; done").Output()
			if err != nil {
				t.Fatalf("sh reading %s: %v", command, err)
			}
			want := []string{"nixbucket", "serve", "--cache", cache, "--listen", serveListen}
			if got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"); !slices.Equal(got, want) {
				t.Errorf("the shell reads %s as %q, want %q", command, got, want)
			}
		})
	}
}
