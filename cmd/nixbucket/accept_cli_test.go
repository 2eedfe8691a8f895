package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/signing"
)

// lockedBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startPushServe runs `nixbucket serve` with args and env, and returns the
// base URL it serves and its stderr.
func startPushServe(t *testing.T, env []string, args ...string) (string, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(cliBin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = cliEnv(t, env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewReader(stdout)
	first, err := lines.ReadString('\n')
	if err != nil {
		t.Fatalf("serve printed %q and then %v; stderr %q", first, err, stderr.String())
	}
	m := regexp.MustCompile(` on (http://127\.0\.0\.1:[0-9]+)\n$`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("serve's first line %q does not say where it listens", first)
	}
	go io.Copy(io.Discard, lines)
	return m[1], stderr
}

// TestPushThroughServe pushes a closure with `nixbucket push --cache
// http://…` through `serve --accept-push` into MinIO, with no bucket
// credentials on the pushing side: with a wrong token it fails with one
// line and writes nothing; with NIXBUCKET_PUSH_TOKEN, and with a netrc
// file, it pushes; verify finds the bucket clean and real Nix
// substitutes the closure. The token appears in no output.
func TestPushThroughServe(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-accept")
	app := nixtest.Build(t, f, "app")[0]
	dag := nixtest.Build(t, f, "dag")[0] // a second closure, pushed with the netrc file
	closure := nixtest.Lines(t, "nix-store", "-qR", app, dag)
	key, _ := signing.GenerateSecretKey("cli-accept-1")
	srv := s3test.Start(t, s3test.MinIO)
	dir := t.TempDir()
	token := "cli-accept-" + s3test.RandomHex(16)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	base, serveLog := startPushServe(t, creds(srv), "--cache", srv.URL, "--accept-push", "--push-token-file", tokenFile,
		"--trusted-public-key", key.PublicKey().String())

	signer := "NIXBUCKET_SECRET_KEY=" + key.Encode()
	noToken := func(t *testing.T, outs ...string) {
		t.Helper()
		for _, out := range append(outs, serveLog.String()) {
			if strings.Contains(out, token) || strings.Contains(out, token[len(token)-12:]) {
				t.Errorf("the push token is in the output: %q", out)
			}
		}
	}

	code, stdout, stderr := runBin(t, []string{signer, pushTokenEnv + "=cli-accept-wrong-token-0123"}, "push", "--cache", base, app)
	if code != exitRemote {
		t.Fatalf("push with a wrong token: exit %d, want %d: %s%s", code, exitRemote, stdout, stderr)
	}
	oneErrorLine(t, stderr)
	if !strings.Contains(stderr, "401") {
		t.Errorf("push with a wrong token does not say 401: %q", stderr)
	}
	if keys := listing(t, srv.Open(t, strings.TrimPrefix(strings.Split(srv.URL, "?")[0], "s3://"))); len(keys) != 0 {
		t.Fatalf("a push with a wrong token wrote %v", keys)
	}

	code, stdout, stderr = runBin(t, []string{signer, pushTokenEnv + "=" + token}, "--verbose", "push", "--cache", base, app)
	if code != 0 {
		t.Fatalf("push --cache %s: exit %d: %s%s", base, code, stdout, stderr)
	}
	if !strings.Contains(stdout, "pushed ") {
		t.Errorf("push printed %q", stdout)
	}
	noToken(t, stdout, stderr)

	netrc := filepath.Join(dir, "netrc")
	os.WriteFile(netrc, []byte("machine 127.0.0.1\n  login ci\n  password "+token+"\n"), 0o600)
	code, stdout, stderr = runBin(t, []string{signer}, "push", "--cache", base, "--netrc-file", netrc, "--json", dag, app)
	if code != 0 {
		t.Fatalf("push --netrc-file: exit %d: %s%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`"pushed":[1-9]`).MatchString(stdout) {
		t.Errorf("push --netrc-file pushed nothing: %s", stdout)
	}
	noToken(t, stdout, stderr)

	code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", srv.URL, "--trusted-public-key", key.PublicKey().String())
	if code != 0 {
		t.Fatalf("verify after pushes through serve: exit %d: %s%s", code, stdout, stderr)
	}
	root, err := nixtest.Substitute(t, base, key.PublicKey().String(), closure)
	if err != nil {
		t.Fatalf("substituting what push --cache http:// pushed: %v", err)
	}
	nixtest.AssertInStore(t, root, closure)
	noToken(t)

	os.WriteFile(netrc+"-short", []byte("short\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"root", []string{"push", "--cache", base, "--root", "main", app}, "--root needs a bucket"},
		{"repair", []string{"push", "--cache", base, "--repair", app}, "--repair needs a bucket"},
		{"user in URL", []string{"push", "--cache", strings.Replace(base, "http://", "http://ci:"+token+"@", 1), app}, "no user or password"},
		{"verify", []string{"verify", "--cache", base}, "can only be pushed to"},
		{"netrc missing", []string{"push", "--cache", base, "--netrc-file", filepath.Join(dir, "none"), app}, "netrc"},
		{"serve without token file", []string{"serve", "--cache", srv.URL, "--accept-push", "--trusted-public-key", key.PublicKey().String()}, "--accept-push needs --push-token-file"},
		{"serve without trusted key", []string{"serve", "--cache", srv.URL, "--accept-push", "--push-token-file", tokenFile}, "--accept-push needs --trusted-public-key"},
		{"serve token file without accept-push", []string{"serve", "--cache", srv.URL, "--push-token-file", tokenFile}, "--push-token-file needs --accept-push"},
		{"serve short token", []string{"serve", "--cache", srv.URL, "--accept-push", "--push-token-file", netrc + "-short", "--trusted-public-key", key.PublicKey().String()}, "at least 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBin(t, []string{signer}, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.says) {
				t.Errorf("exit %d, %q; want %d saying %q", code, stdout+stderr, exitUsage, tc.says)
			}
			oneErrorLine(t, stderr)
			noToken(t, stdout, stderr)
		})
	}
}
