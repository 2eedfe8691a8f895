package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
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
		{http.MethodHead, "/" + storepath.HashPart(app) + ".narinfo", "text/x-nix-narinfo"},
		{http.MethodGet, "/" + storepath.HashPart(app) + ".narinfo", "text/x-nix-narinfo"},
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

// server is a running `nixbucket serve`.
type server struct {
	cmd  *exec.Cmd
	base string // the URL it said it serves on
	// metrics is the URL of its /metrics, when args has --metrics-listen.
	metrics string
	lines   chan string // its stderr, line by line
	exited  chan error  // its exit
	mu      sync.Mutex
	stderr  bytes.Buffer // all of its stderr so far
}

// startServe starts `nixbucket serve ARGS --listen 127.0.0.1:0` with env
// and waits for the line saying where it serves.
func startServe(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	s := &server{lines: make(chan string, 100000), exited: make(chan error, 1)}
	s.cmd = exec.Command(cliBin, append(append([]string{"serve"}, args...), "--listen", "127.0.0.1:0")...)
	s.cmd.Env = cliEnv(t, env)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill() })
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		defer close(s.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			s.lines <- sc.Text()
		}
	}()
	// With --metrics-listen, a second line says where the metrics are.
	want := 1
	if slices.Contains(args, "--metrics-listen") {
		want = 2
	}
	first := make(chan []string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		var lines []string
		for range want {
			line, _ := r.ReadString('\n')
			lines = append(lines, line)
		}
		first <- lines
		io.Copy(io.Discard, r)
		<-stderrDone
		s.exited <- s.cmd.Wait()
	}()
	lines := <-first
	m := regexp.MustCompile(`^serving (?:s3|file)://\S+ on (https?://127\.0\.0\.1:[0-9]+)\n$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("serve's first line %q does not say where it serves; stderr %q", lines[0], s.Stderr())
	}
	s.base = m[1]
	if want == 2 {
		mm := regexp.MustCompile(`^metrics on (http://127\.0\.0\.1:[0-9]+/metrics)\n$`).FindStringSubmatch(lines[1])
		if mm == nil {
			t.Fatalf("serve's second line %q does not say where its metrics are; stderr %q", lines[1], s.Stderr())
		}
		s.metrics = mm[1]
	}
	return s
}

// Stderr returns what the server wrote on stderr so far.
func (s *server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// waitFor reads stderr lines until one contains text.
func (s *server) waitFor(t *testing.T, text string) {
	t.Helper()
	for line := range s.lines {
		if strings.Contains(line, text) {
			return
		}
	}
	t.Fatalf("serve's stderr ended without %q: %q", text, s.Stderr())
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their files.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nixbucket serve test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// nixCopyFrom has real Nix copy paths from cacheURL into a new chroot
// store, with require-sigs, as nixtest.Substitute does, but reading the
// password from netrc and trusting the CA certificate caFile. It returns
// the chroot's root and Nix's error.
func nixCopyFrom(t *testing.T, cacheURL, trustedKey, netrc, caFile string, paths []string) (string, error) {
	t.Helper()
	nixtest.Require(t)
	root := t.TempDir()
	args := append([]string{"copy", "--from", cacheURL, "--to", "local?root=" + root,
		"--option", "trusted-public-keys", trustedKey, "--option", "require-sigs", "true",
		"--option", "narinfo-cache-negative-ttl", "0",
		"--option", "netrc-file", netrc}, paths...)
	// Debian's Nix 2.8 has no ssl-cert-file setting; it reads the variable.
	env := []string{"XDG_CACHE_HOME=" + t.TempDir(), "NIX_SSL_CERT_FILE=" + caFile}
	_, err := nixtest.Output(context.Background(), env, "nix", append(args, nixtest.Options...)...)
	return root, err
}

// TestServeSecured runs `nixbucket serve --htpasswd --tls-cert --tls-key`
// over a bucket that push filled on a real S3 server (versitygw): curl
// gets 401 without the password (also for keys outside the layout) and
// the cache with it, over TLS with a self-signed certificate; real Nix
// substitutes the closure with the password from its netrc-file and
// fails with a wrong one; every request is one INFO line on stderr
// (method, key, status, bytes, ms) and the password is never shown; and
// SIGTERM lets a download in flight finish before serve exits 0. Bad
// --htpasswd and TLS files are usage errors.
func TestServeSecured(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 4, "cli-serve-secured")
	app := nixtest.Build(t, f, "app")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", app)
	key, _ := signing.GenerateSecretKey("cli-serve-secured-1")
	srv := s3test.Start(t, s3test.VersityGW)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	if code, _, stderr := runBin(t, env, "push", "--cache", srv.URL, app); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	bigNAR := make([]byte, 64<<20)
	rand.Read(bigNAR)
	const bigKey = "nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar"
	if err := srv.Open(t, srv.Bucket).Put(context.Background(), bigKey, bytes.NewReader(bigNAR), int64(len(bigNAR)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	const password = "pw-0f1e2d3c4b5a"
	users := filepath.Join(dir, "htpasswd")
	if out, err := exec.Command("htpasswd", "-B", "-c", "-b", users, "nix", password).CombinedOutput(); err != nil {
		t.Fatalf("htpasswd (apt-get install apache2-utils): %v: %s", err, out)
	}
	certFile, keyFile := selfSigned(t, dir)
	s := startServe(t, creds(srv), "--cache", srv.URL, "--htpasswd", users, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.base, "https://") {
		t.Fatalf("serve with a certificate serves on %s", s.base)
	}

	curlStatus := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", certFile}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{s.base + "/nix-cache-info"}, "401"},
		{[]string{"-u", "nix:wrong", s.base + "/nix-cache-info"}, "401"},
		{[]string{s.base + "/locks/x"}, "401"},
		{[]string{"-u", "nix:" + password, s.base + "/nix-cache-info"}, "200"},
		{[]string{"-u", "nix:" + password, s.base + "/" + storepath.HashPart(app) + ".narinfo"}, "200"},
		{[]string{"-u", "nix:" + password, s.base + "/locks/x"}, "404"},
	} {
		if got := curlStatus(tc.args...); got != tc.want {
			t.Errorf("curl %v: %s, want %s", tc.args, got, tc.want)
		}
	}
	if out, err := exec.Command("curl", "-sS", "-o", "/dev/null", s.base+"/nix-cache-info").CombinedOutput(); err == nil {
		t.Errorf("curl trusted the self-signed certificate without --cacert: %s", out)
	}

	netrc := func(pw string) string {
		f := filepath.Join(t.TempDir(), "netrc")
		if err := os.WriteFile(f, []byte("machine 127.0.0.1 login nix password "+pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if root, err := nixCopyFrom(t, s.base, key.PublicKey().String(), netrc("wrong"), certFile, closure); err == nil || !strings.Contains(err.Error(), "does not appear to be a binary cache") {
		// Nix takes the 401 of nix-cache-info for a missing cache.
		t.Errorf("nix with a wrong password: %v; want its 401 (substituted into %s)", err, root)
	}
	root, err := nixCopyFrom(t, s.base, key.PublicKey().String(), netrc(password), certFile, closure)
	if err != nil {
		t.Fatalf("nix could not substitute through serve with its netrc-file: %v", err)
	}
	nixtest.AssertInStore(t, root, closure)

	// A download in flight when SIGTERM comes is finished.
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, s.base+"/"+bigKey, nil)
	req.SetBasicAuth("nix", password)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "shutting down")
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(first, rest...), bigNAR) {
		t.Errorf("the download in flight at SIGTERM: %d bytes, %v; want all %d", len(first)+len(rest), err, len(bigNAR))
	}
	if err := <-s.exited; err != nil {
		t.Errorf("serve after SIGTERM: %v; stderr %q", err, s.Stderr())
	}

	log := s.Stderr()
	for _, re := range []string{
		`level=INFO msg=request method=GET key=nix-cache-info status=401 bytes=\d+ ms=\d+ `,
		`level=INFO msg=request method=GET key=nix-cache-info status=200 bytes=\d+ ms=\d+ .*user=nix`,
		`level=INFO msg=request method=GET key=` + storepath.HashPart(closure[0]) + `\.narinfo status=200 bytes=\d+ ms=\d+ `,
		`level=INFO msg=request method=GET key=nar/\S+ status=200 bytes=\d+ ms=\d+ `,
		`level=INFO msg=request method=GET key=locks/x status=404 `,
		`level=INFO msg=request method=GET key=` + bigKey + ` status=200 bytes=67108864 ms=\d+ `,
	} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("serve's log has no line matching %s:\n%s", re, log)
		}
	}
	for _, secret := range []string{password, srv.SecretKey} {
		if strings.Contains(log, secret) {
			t.Errorf("serve's log shows a secret")
		}
	}

	md5 := filepath.Join(dir, "md5")
	if out, err := exec.Command("htpasswd", "-m", "-c", "-b", md5, "nix", password).CombinedOutput(); err != nil {
		t.Fatalf("htpasswd -m: %v: %s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"missing htpasswd", []string{"--htpasswd", filepath.Join(dir, "none")}, "--htpasswd"},
		{"md5 htpasswd", []string{"--htpasswd", md5}, "not bcrypt"},
		{"cert without key", []string{"--tls-cert", certFile}, "--tls-key"},
		{"key without cert", []string{"--tls-key", keyFile}, "--tls-cert"},
		{"key for cert", []string{"--tls-cert", keyFile, "--tls-key", keyFile}, "--tls-cert"},
	} {
		code, stdout, stderr := runBin(t, creds(srv), append([]string{"serve", "--cache", srv.URL, "--listen", "127.0.0.1:0"}, tc.args...)...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.says) {
			t.Errorf("serve %s: exit %d, stdout %q, stderr %q; want exit %d saying %q", tc.name, code, stdout, stderr, exitUsage, tc.says)
		}
		oneErrorLine(t, stderr)
		if strings.Contains(stderr, "$apr1$") {
			t.Errorf("serve %s shows the hash: %q", tc.name, stderr)
		}
	}
}
