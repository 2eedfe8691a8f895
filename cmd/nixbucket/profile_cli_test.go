package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestProfileFiles runs the real binary with NIXBUCKET_CPUPROFILE and
// NIXBUCKET_TRACE on each way out of main (success, an error, and SIGINT
// on a long-running command) and checks that both files are written and
// that Go's own tools read them.
func TestProfileFiles(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped in -short: needs the nixbucket binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool pprof and go tool trace read the files: %v", err)
	}
	for _, tc := range []struct {
		name   string
		args   func(dir string) []string
		signal bool
		code   int
	}{
		{"success", func(dir string) []string {
			return []string{"key", "generate", "--name", "profile-1", "--secret-key-file", filepath.Join(dir, "key")}
		}, false, 0},
		{"error", func(dir string) []string { return []string{"nar", filepath.Join(dir, "missing")} }, false, exitNotFound},
		{"interrupted", func(dir string) []string {
			return []string{"serve", "--cache", "file://" + dir, "--listen", "127.0.0.1:0"}
		}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cpu, trc := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "trace.out")
			cmd := exec.Command(cliBin, tc.args(dir)...)
			cmd.Env = cliEnv(t, []string{"NIXBUCKET_CPUPROFILE=" + cpu, "NIXBUCKET_TRACE=" + trc})
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill() })
			lines := bufio.NewReader(stdout)
			if tc.signal {
				// serve's first line says it listens: it is running.
				if first, err := lines.ReadString('\n'); err != nil {
					t.Fatalf("serve printed %q and then %v; stderr %q", first, err, stderr.String())
				}
				if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
			}
			io.Copy(io.Discard, lines)
			code := 0
			if err := cmd.Wait(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				code = ee.ExitCode()
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr.String())
			}
			if strings.Contains(stderr.String(), "profile") || strings.Contains(stderr.String(), "NIXBUCKET_") {
				t.Errorf("stderr mentions the profiles: %q", stderr.String())
			}
			for _, check := range [][]string{
				{"tool", "pprof", "-top", cliBin, cpu},
				{"tool", "trace", "-d=parsed", trc},
			} {
				if fi, err := os.Stat(check[len(check)-1]); err != nil || fi.Size() == 0 {
					t.Fatalf("%s: %v (want a non-empty file)", check[len(check)-1], err)
				}
				if out, err := exec.Command(goBin, check...).CombinedOutput(); err != nil {
					t.Errorf("go %s: %v\n%s", strings.Join(check, " "), err, out)
				}
			}
		})
	}
}
