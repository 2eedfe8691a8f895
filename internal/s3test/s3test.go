// Package s3test runs real S3 servers for tests: versitygw (posix back
// end) and MinIO, built once by scripts/install-s3-servers.sh into
// ${NIXBUCKET_TOOLS:-$HOME/.cache/nixbucket/bin}. Start launches one on a
// free loopback port with random root credentials and region "garage",
// creates a bucket and stops the server when the test ends. A missing
// server binary fails the test; it is never skipped, except in -short
// mode (go test -short), which starts no server: there Start skips.
//
// It also has two proxies to put in front of a server: a fault-injecting
// HTTP reverse proxy that picks requests (NewFaultProxy), and Shopify's
// toxiproxy, run in-process, for faults of the TCP stream (NewToxi).
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// Server kinds.
const (
	// VersityGW is the Versity S3 gateway with its posix back end.
	VersityGW = "versitygw"
	// MinIO is the MinIO server on a single directory.
	MinIO = "minio"
)

// Region is the region every test server is configured with, as Garage.
const Region = "garage"

// Servers lists every server kind, for tests that loop over them.
func Servers() []string { return []string{VersityGW, MinIO} }

// ToolsDir is where the server binaries are installed:
// $NIXBUCKET_TOOLS, else $HOME/.cache/nixbucket/bin.
func ToolsDir() string {
	if d := os.Getenv("NIXBUCKET_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "nixbucket", "bin")
}

// Server is a running S3 server.
type Server struct {
	// Kind is VersityGW or MinIO.
	Kind string
	// Endpoint is the server's base URL, http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Bucket is the bucket Start created.
	Bucket string
	// URL is a store URL for Bucket: s3://BUCKET?endpoint=…&region=garage.
	URL string
	// Dir is the server's data directory.
	Dir string
	// StartupTime is how long the server took to answer after launch.
	StartupTime time.Duration

	logFile string
}

// Start starts a server of the given kind, waits until it answers,
// creates a bucket and registers its shutdown with t.Cleanup. In -short
// mode it skips the test instead.
func Start(t testing.TB, kind string) *Server {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipped in -short: needs an S3 server (%s)", kind)
	}
	bin := filepath.Join(ToolsDir(), kind)
	if kind != VersityGW && kind != MinIO {
		t.Fatalf("s3test: unknown server kind %q (want %s or %s)", kind, VersityGW, MinIO)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("s3test: %s not found in %s: run scripts/install-s3-servers.sh (set NIXBUCKET_TOOLS to use another directory)", kind, ToolsDir())
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := launch(t, kind, bin)
		if err == nil {
			s.Bucket = s.NewBucket(t)
			s.URL = s.StoreURL(s.Bucket)
			t.Logf("s3test: %s on %s answered after %v", kind, s.Endpoint, s.StartupTime.Round(time.Millisecond))
			return s
		}
		lastErr = err // e.g. the port was taken meanwhile: try another
	}
	t.Fatalf("s3test: starting %s: %v", kind, lastErr)
	return nil
}

// launch runs the server once on a fresh port and waits for it.
func launch(t testing.TB, kind, bin string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	base := t.TempDir()
	s := &Server{
		Kind:      kind,
		Endpoint:  fmt.Sprintf("http://127.0.0.1:%d", port),
		AccessKey: "NB" + strings.ToUpper(RandomHex(9)),
		SecretKey: RandomHex(20),
		Dir:       filepath.Join(base, "data"),
		logFile:   filepath.Join(base, kind+".log"),
	}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var cmd *exec.Cmd
	switch kind {
	case VersityGW:
		// --keep-alive: versitygw closes every connection by default, unlike
		// Garage, MinIO or AWS, which would make each request pay a dial.
		cmd = exec.Command(bin, "--port", addr, "--region", Region, "--keep-alive", "--quiet", "posix", s.Dir)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	case MinIO:
		cmd = exec.Command(bin, "server", s.Dir, "--address", addr, "--console-address", "127.0.0.1:0", "--quiet")
		cmd.Env = append(os.Environ(),
			"MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
			"MINIO_SITE_REGION="+Region, "MINIO_UPDATE=off", "MINIO_BROWSER=off",
			"MINIO_CI_CD=1", "HOME="+base)
	}
	logf, err := os.Create(s.logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}

	health := s.Endpoint + "/"
	if kind == MinIO {
		health = s.Endpoint + "/minio/health/ready"
	}
	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited during startup (%v): %s", kind, err, s.logTail())
		default:
		}
		if ready(client, health, kind) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s did not answer on %s within 90s: %s", kind, s.Endpoint, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.StartupTime = time.Since(started)
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("s3test: %s log: %s", kind, s.logTail())
		}
	})
	return s, nil
}

// ready reports whether the server answers: any HTTP response from
// versitygw, 200 from MinIO's readiness probe.
func ready(client *http.Client, u, kind string) bool {
	resp, err := client.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return kind != MinIO || resp.StatusCode == http.StatusOK
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logFile)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server a test starts.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RandomHex returns 2n random hex digits, for names and credentials.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StoreURL returns the store URL of bucket on this server.
func (s *Server) StoreURL(bucket string) string {
	return "s3://" + bucket + "?endpoint=" + s.Endpoint + "&region=" + Region
}

// Credentials returns the root credentials for s3cache.S3Options.
func (s *Server) Credentials() *s3cache.Credentials {
	return &s3cache.Credentials{AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey}
}

// Options returns S3Options with the root credentials and short retry
// backoffs, for tests.
func (s *Server) Options() s3cache.S3Options {
	return s3cache.S3Options{Credentials: s.Credentials(), MaxBackoff: 2 * time.Second}
}

// Open opens bucket on this server with Options.
func (s *Server) Open(t testing.TB, bucket string) *s3cache.S3Bucket {
	t.Helper()
	u, err := s3cache.ParseURL(s.StoreURL(bucket))
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	b, err := s3cache.OpenS3(context.Background(), u, s.Options())
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return b
}

// CreateBucket creates a bucket with the given name.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	u, err := s3cache.ParseURL(s.StoreURL(name))
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s3cache.CreateBucket(ctx, u, s.Options()); err != nil {
		t.Fatalf("s3test: creating bucket %s on %s: %v", name, s.Kind, err)
	}
}

// NewBucket creates a bucket with a random name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := "nixbucket-test-" + RandomHex(6)
	s.CreateBucket(t, name)
	return name
}
