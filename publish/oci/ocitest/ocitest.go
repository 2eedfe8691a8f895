// Package ocitest runs a real OCI registry for tests: Debian's
// docker-registry (distribution 2.8) on a free loopback port, with
// htpasswd (bcrypt) authentication, and runs Debian's skopeo as an
// independent client. A missing binary fails the test; it is never
// skipped.
package ocitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/s3test"
)

// Registry is a running docker-registry.
type Registry struct {
	// Host is host:port of the registry, e.g. 127.0.0.1:39123.
	Host string
	// User and Password are the one account htpasswd accepts.
	User, Password string

	log string
}

// DockerAuth returns a docker config.json granting User on Host, as a CI
// secret holds it.
func (r *Registry) DockerAuth() string {
	auth := base64.StdEncoding.EncodeToString([]byte(r.User + ":" + r.Password))
	return fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q}}}`, r.Host, auth)
}

// Creds returns user:password for skopeo's --creds.
func (r *Registry) Creds() string { return r.User + ":" + r.Password }

func lookPath(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("ocitest: %s not found: install Debian's %s (scripts/setup.sh does)", bin, pkg)
	}
	return p
}

// Start starts a registry and stops it when the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin := lookPath(t, "docker-registry", "docker-registry")
	htpasswd := lookPath(t, "htpasswd", "apache2-utils")
	dir := t.TempDir()
	r := &Registry{User: "ci", Password: s3test.RandomHex(12), log: filepath.Join(dir, "registry.log")}
	out, err := exec.Command(htpasswd, "-Bbn", r.User, r.Password).Output()
	if err != nil {
		t.Fatalf("ocitest: htpasswd: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		port, err := s3test.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
auth:
  htpasswd:
    realm: ocitest
    path: %s
`, filepath.Join(dir, "data"), r.Host, filepath.Join(dir, "htpasswd"))
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(r.log)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("ocitest: starting docker-registry: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if waitReady(r.Host, exited) {
			t.Cleanup(stop)
			return r
		}
		stop()
		if attempt == 2 {
			data, _ := os.ReadFile(r.log)
			t.Fatalf("ocitest: docker-registry did not answer on %s: %s", r.Host, data)
		}
	}
}

// waitReady waits for /v2/ to answer 401 (authentication required).
func waitReady(host string, exited <-chan struct{}) bool {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := c.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Skopeo runs skopeo with args and returns its stdout; a failure fails the
// test with skopeo's stderr.
func Skopeo(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := SkopeoErr(t, args...)
	if err != nil {
		t.Fatalf("skopeo %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// SkopeoErr runs skopeo with args and returns its stdout, or an error with
// its stderr.
func SkopeoErr(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	bin := lookPath(t, "skopeo", "skopeo")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// skopeo needs a policy; accept anything, as the test's own registry.
	pol := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(pol, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Args = append([]string{bin, "--policy", pol}, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}
