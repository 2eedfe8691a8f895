package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/signing"
)

// TestNoEscapes runs the commands a first hour uses against a real server,
// their output on pipes, and then push in a terminal with NO_COLOR set:
// nothing nixbucket prints has an ANSI escape (its one drawing, push's
// bar on a terminal, uses carriage returns alone).
func TestNoEscapes(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	f := nixtest.Sample(t, 3, "cli-escapes")
	app := nixtest.Build(t, f, "app")[0]
	srv := s3test.Start(t, s3test.VersityGW)
	key, err := signing.GenerateSecretKey("cli-escapes-1")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "cache.key")
	if code, _, stderr := runBin(t, nil, "key", "generate", "--name", "cli-escapes-1", "--secret-key-file", keyFile); code != 0 {
		t.Fatalf("key generate: exit %d: %s", code, stderr)
	}
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	for _, args := range [][]string{
		{"help"}, {"push", "--help"},
		{"init", "--cache", srv.URL},
		{"push", "--cache", srv.URL, "--root", "main", "--progress-interval", "1ms", app},
		{"push", "--cache", srv.URL, "nixpkgs#hello"},
		{"key", "nixconf", "--cache-url", srv.URL, "--secret-key-file", keyFile},
		{"verify", "--cache", srv.URL},
		{"stats", "--cache", srv.URL},
		{"gc", "--cache", srv.URL, "--dry-run"},
	} {
		_, stdout, stderr := runBin(t, env, args...)
		if strings.Contains(stdout+stderr, "\x1b") {
			t.Errorf("nixbucket %s printed escapes on a pipe: %q %q", strings.Join(args, " "), stdout, stderr)
		}
	}

	name := srv.NewBucket(t)
	cmd := exec.Command("script", "-qefc", shellQuote(cliBin, "push", "--cache", srv.StoreURL(name), app), "/dev/null")
	cmd.Env = cliEnv(t, append([]string{"TERM=xterm", "NO_COLOR=1"}, env...))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("script(1) running push in a terminal: %v: %q", err, out)
	}
	if text := string(out); strings.Contains(text, "\x1b") || !strings.Contains(text, "pushed ") {
		t.Errorf("push in a terminal with NO_COLOR=1: %q", text)
	}
}
