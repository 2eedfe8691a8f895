package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
)

// shellWords reads line as a POSIX shell does (sh -c) and returns its words.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "for a in "+line+"; do printf '%s\\0' \"$a\"; done").Output()
	if err != nil {
		t.Fatalf("sh reading %s: %v", line, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// inTerminal runs the bash script in a pseudo-terminal (script(1)) with
// env added to the test's environment, and returns what it printed.
func inTerminal(t *testing.T, script string, env ...string) string {
	t.Helper()
	cmd := exec.Command("script", "-qefc", shellQuote("bash", "-c", script), "/dev/null")
	cmd.Env = append(os.Environ(), append([]string{"TERM=xterm"}, env...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("script(1) running %s: %v: %q", script, err, out)
	}
	return string(out)
}

// TestScriptOutput checks the scripts' output helpers (scripts/lib.sh):
// an echoed command pastes (a shell reads it back as the same words, the
// s3:// URL whole), and headings are bold only on a terminal without
// NO_COLOR.
func TestScriptOutput(t *testing.T) {
	t.Parallel()
	url := "s3://demo?endpoint=http://127.0.0.1:9000&region=garage"
	script := `source ../../scripts/lib.sh; say Heading; run printf '%s|' push --cache "` + url + `" "it's" ""`
	out, err := exec.Command("bash", "-c", script).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	text := string(out)
	if strings.Contains(text, "\x1b") {
		t.Errorf("escapes off a terminal: %q", text)
	}
	var echoed string
	for _, l := range strings.Split(text, "\n") {
		if c, ok := strings.CutPrefix(l, "$ "); ok {
			echoed = c
		}
	}
	want := []string{"printf", "%s|", "push", "--cache", url, "it's", ""}
	if got := shellWords(t, echoed); !slices.Equal(got, want) {
		t.Errorf("the echoed command %s reads back as %q, want %q", echoed, got, want)
	}
	if !strings.Contains(text, "\n== Heading\n") || !strings.Contains(text, "push|--cache|"+url+"|it's||") {
		t.Errorf("output %q", text)
	}

	tty := inTerminal(t, `source ../../scripts/lib.sh; say Heading`)
	if !strings.Contains(tty, "\x1b[1m== Heading\x1b[0m") {
		t.Errorf("no bold heading on a terminal: %q", tty)
	}
	for _, v := range []string{"NO_COLOR=1", "NO_COLOR=true"} {
		if tty := inTerminal(t, `source ../../scripts/lib.sh; say Heading`, v); strings.Contains(tty, "\x1b") || !strings.Contains(tty, "== Heading") {
			t.Errorf("%s on a terminal: %q, want the heading without escapes", v, tty)
		}
	}
}

// TestDemo runs make demo's script (scripts/demo.sh) with this binary and
// the versitygw the tests use, its output on a pipe: it finishes, prints
// no escape, and every command it echoes reads back as the words it ran,
// the s3:// URL whole.
func TestDemo(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	if _, err := os.Stat(filepath.Join(s3test.ToolsDir(), "versitygw")); err != nil {
		t.Fatalf("no versitygw (run scripts/install-s3-servers.sh versitygw): %v", err)
	}
	cmd := exec.Command("bash", "scripts/demo.sh")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "NIXBUCKET_BIN="+cliBin, "NIXBUCKET_TOOLS="+s3test.ToolsDir())
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, text)
	}
	if !strings.Contains(text, "== Done: pushed, served, substituted and verified with real Nix.") {
		t.Errorf("the demo did not finish:\n%s", text)
	}
	if strings.Contains(text, "\x1b") {
		t.Errorf("the demo printed escapes on a pipe:\n%q", text)
	}
	cacheURL := regexp.MustCompile(`^s3://demo\?endpoint=http://127\.0\.0\.1:[0-9]+&region=garage$`)
	caches := 0
	for _, l := range strings.Split(text, "\n") {
		c, ok := strings.CutPrefix(l, "$ ")
		if !ok {
			continue
		}
		words := shellWords(t, c)
		if i := slices.Index(words, "--cache"); i >= 0 {
			caches++
			if i+1 >= len(words) || !cacheURL.MatchString(words[i+1]) {
				t.Errorf("echoed command %s: --cache is not the whole URL: %q", c, words)
			}
		}
	}
	if caches == 0 {
		t.Errorf("the demo echoed no command with --cache:\n%s", text)
	}
	if !strings.Contains(text, "#   nixbucket serve --cache 's3://demo?endpoint=") {
		t.Errorf("key nixconf gave no serve way for this Nix:\n%s", text)
	}
}
