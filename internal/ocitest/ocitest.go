// Package ocitest runs a real OCI registry for tests: Debian's
// docker-registry (distribution 2.8) on a free loopback port, with
// htpasswd (bcrypt) authentication, over plain HTTP or over TLS with a
// self-signed certificate made for the test, and runs Debian's skopeo as
// an independent client. A missing binary fails the test; it is never
// skipped, except in -short mode (go test -short), which runs neither.
package ocitest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
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
	// TLS is true for a registry started by StartTLS.
	TLS bool
	// CertDir, for a TLS registry, holds its self-signed certificate as
	// ca.crt: skopeo's --cert-dir, to verify it.
	CertDir string

	log   string
	roots *x509.CertPool
}

// DockerAuth returns a docker config.json granting User on Host, as a CI
// secret holds it.
func (r *Registry) DockerAuth() string {
	auth := base64.StdEncoding.EncodeToString([]byte(r.User + ":" + r.Password))
	return fmt.Sprintf(`{"auths":{"%s://%s":{"auth":%q}}}`, r.scheme(), r.Host, auth)
}

func (r *Registry) scheme() string {
	if r.TLS {
		return "https"
	}
	return "http"
}

// Creds returns user:password for skopeo's --creds.
func (r *Registry) Creds() string { return r.User + ":" + r.Password }

func lookPath(t testing.TB, bin, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipped in -short: needs %s", bin)
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("ocitest: %s not found: install Debian's %s (scripts/setup.sh does)", bin, pkg)
	}
	return p
}

// Start starts a plain-HTTP registry and stops it when the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	return start(t, false)
}

// StartTLS starts a registry that serves TLS only, with a self-signed
// certificate for 127.0.0.1 and localhost that no system trusts, and stops
// it when the test ends.
func StartTLS(t testing.TB) *Registry {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, useTLS bool) *Registry {
	t.Helper()
	bin := lookPath(t, "docker-registry", "docker-registry")
	htpasswd := lookPath(t, "htpasswd", "apache2-utils")
	dir := t.TempDir()
	r := &Registry{User: "ci", Password: s3test.RandomHex(12), TLS: useTLS, log: filepath.Join(dir, "registry.log")}
	out, err := exec.Command(htpasswd, "-Bbn", r.User, r.Password).Output()
	if err != nil {
		t.Fatalf("ocitest: htpasswd: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsConf := ""
	if useTLS {
		r.CertDir = filepath.Join(dir, "certs")
		certFile, keyFile := filepath.Join(r.CertDir, "ca.crt"), filepath.Join(dir, "registry.key")
		certPEM, keyPEM, err := selfSigned()
		if err != nil {
			t.Fatalf("ocitest: making a certificate: %v", err)
		}
		if err := os.MkdirAll(r.CertDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		r.roots = x509.NewCertPool()
		r.roots.AppendCertsFromPEM(certPEM)
		tlsConf = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
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
%sauth:
  htpasswd:
    realm: ocitest
    path: %s
`, filepath.Join(dir, "data"), r.Host, tlsConf, filepath.Join(dir, "htpasswd"))
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
		if r.waitReady(exited) {
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
func (r *Registry) waitReady(exited <-chan struct{}) bool {
	c := &http.Client{Timeout: time.Second}
	if r.TLS {
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.roots}}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := c.Get(r.scheme() + "://" + r.Host + "/v2/")
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

// selfSigned returns a PEM certificate and PKCS #8 key, valid for a day,
// for 127.0.0.1, ::1 and localhost, signed by itself.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ocitest registry"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
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
