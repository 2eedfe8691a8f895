package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
)

// TestServeCommand runs `nixbucket serve` over a bucket that push filled
// on a real S3 server: it says where it listens (port 0 picks one),
// answers GET and HEAD with Nix's media types, real Nix substitutes the
// closure through it with signatures required, and SIGINT stops it with
// exit 0. Bad input fails at once with one line.
func TestServeCommand(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 5, "cli-serve")
	app := nixtest.Build(t, f, "app")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", app)
	key, _ := signing.GenerateSecretKey("cli-serve-1")
	srv := s3test.Start(t, s3test.MinIO)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	if code, _, stderr := runBin(t, env, "push", "--cache", srv.URL, app); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}

	cmd := exec.Command(cliBin, "serve", "--cache", srv.URL, "--listen", "127.0.0.1:0")
	home := t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none")}, creds(srv)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := bufio.NewReader(stdout)
	first, err := lines.ReadString('\n')
	if err != nil {
		t.Fatalf("serve printed %q and then %v; stderr %q", first, err, stderr.String())
	}
	m := regexp.MustCompile(`^serving s3://\S+ on (http://127\.0\.0\.1:[0-9]+)\n$`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("serve's first line %q does not say where it listens", first)
	}
	base := m[1]
	go io.Copy(io.Discard, lines)

	for _, tc := range []struct{ method, path, ctype string }{
		{http.MethodGet, "/nix-cache-info", "text/x-nix-cache-info"},
		{http.MethodHead, "/" + store.HashPart(app) + ".narinfo", "text/x-nix-narinfo"},
		{http.MethodGet, "/" + store.HashPart(app) + ".narinfo", "text/x-nix-narinfo"},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: %s, %s; want 200, %s", tc.method, tc.path, resp.Status, resp.Header.Get("Content-Type"), tc.ctype)
		}
		if (tc.method == http.MethodHead) != (len(body) == 0) {
			t.Errorf("%s %s: %d bytes of body", tc.method, tc.path, len(body))
		}
	}
	resp, err := http.Post(base+"/nix-cache-info", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}

	root, err := nixtest.Substitute(t, base, key.PublicKey().String(), closure)
	if err != nil {
		t.Fatalf("nix could not substitute through nixbucket serve: %v", err)
	}
	nixtest.AssertInStore(t, root, closure)

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve after SIGINT: %v; stderr %q", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("serve did not stop within a minute of SIGINT")
	}
	if strings.Contains(stderr.String(), srv.SecretKey) {
		t.Errorf("serve logged the secret key")
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"port in use", []string{"--cache", srv.URL, "--listen", busy.Addr().String()}, exitUsage, "listening on " + busy.Addr().String()},
		{"missing bucket", []string{"--cache", srv.StoreURL("no-such-bucket"), "--listen", "127.0.0.1:0"}, exitRemote, `bucket "no-such-bucket" does not exist`},
		{"no cache", []string{"--listen", "127.0.0.1:0"}, exitUsage, "--cache"},
		{"bad listen address", []string{"--cache", srv.URL, "--listen", "nowhere"}, exitUsage, "nowhere"},
	} {
		code, stdout, stderr := runBin(t, creds(srv), append([]string{"serve"}, tc.args...)...)
		if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.says) {
			t.Errorf("serve %s: exit %d, stdout %q, stderr %q; want exit %d saying %q", tc.name, code, stdout, stderr, tc.code, tc.says)
		}
		oneErrorLine(t, stderr)
	}
}
