package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
)

// tight are network options that make the tests of a failing server
// quick: a second without a byte is a stall, and 3 s of retries end a
// request.
var tight = []string{"--connect-timeout", "1s", "--stall-timeout", "1s", "--retry-for", "3s"}

// warnLine matches the WARN line slog prints before a retry.
var warnLine = regexp.MustCompile(`^time=\S+ level=WARN msg="retrying (\S+ \S+) at (\S+): ([^"]+) \(attempt ([0-9]+)\)"$`)

// checkRemoteExit checks how a command ended against a failing server:
// exit 5, WARN lines naming the endpoint before each retry, and one
// error line, last, that names the endpoint.
func checkRemoteExit(t *testing.T, endpoint string, code int, stderr, want string) {
	t.Helper()
	t.Logf("exit %d, stderr:\n%s", code, stderr)
	if code != exitRemote {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitRemote, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "nixbucket: ") || !strings.Contains(last, endpoint) || !strings.Contains(last, want) {
		t.Errorf("last line %q: want 'nixbucket: …' naming %s and saying %q", last, endpoint, want)
	}
	for _, l := range lines[:len(lines)-1] {
		m := warnLine.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("stderr line %q is neither a retry warning nor the error", l)
			continue
		}
		if m[2] != endpoint {
			t.Errorf("retry line %q does not name %s", l, endpoint)
		}
	}
	if want != "plain HTTP" && !strings.Contains(stderr, "(attempt 2)") {
		t.Errorf("no WARN line for a second attempt; stderr:\n%s", stderr)
	}
}

// TestCLISilentServer runs every command that talks to a bucket against
// versitygw behind toxiproxy's timeout toxic (connections accepted,
// nothing ever answered) and reset_peer (every connection reset): each
// retries with a WARN line per retry, then ends with exit 5 and one line
// naming the endpoint. Before, they stayed silent for ~16 minutes and
// exited 1.
func TestCLISilentServer(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-silent")
	lib := nixtest.Build(t, f, "lib")[0]
	key, _ := signing.GenerateSecretKey("cli-silent-1")
	srv := s3test.Start(t, s3test.VersityGW)
	file := filepath.Join(t.TempDir(), "garage")
	if err := os.WriteFile(file, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, toxic := range []struct{ typ, want string }{
		{"timeout", "no response in 1s"},
		{"reset_peer", "gave up after"}, // reset, or no answer where the reset missed
	} {
		t.Run(toxic.typ, func(t *testing.T) {
			t.Parallel()
			x := s3test.NewToxi(t, srv.Endpoint)
			x.Toxic(t, "fault", toxic.typ, "downstream", map[string]any{"timeout": 0})
			url := x.StoreURL(srv.Bucket)
			env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
			for _, tc := range []struct {
				name string
				args []string
				env  []string
			}{
				{"push", []string{"push", "--cache", url, lib}, nil},
				{"verify", []string{"verify", "--cache", url, "--deep"}, nil},
				{"gc", []string{"gc", "--cache", url}, nil},
				{"stats", []string{"stats", "--cache", url}, nil},
				{"init", []string{"init", "--cache", url}, nil},
				{"roots", []string{"roots", "list", "--cache", url}, nil},
				{"publish binary", []string{"publish", "binary", "--bucket", url, "--version", "v1.0.0", "--target", releaseTargets[0], file}, nil},
				{"publish index", []string{"publish", "index", "--bucket", url}, nil},
				// The options from the environment.
				{"serve", []string{"serve", "--cache", url, "--listen", "127.0.0.1:0"},
					[]string{"NIXBUCKET_CONNECT_TIMEOUT=1s", "NIXBUCKET_STALL_TIMEOUT=1s", "NIXBUCKET_RETRY_FOR=3s"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					args := tc.args
					if tc.env == nil {
						args = append(append([]string{}, tight...), args...)
					}
					code, _, stderr := runBin(t, append(append([]string{}, env...), tc.env...), args...)
					checkRemoteExit(t, x.Endpoint, code, stderr, toxic.want)
				})
			}
		})
	}
}

// TestCLIVerifyDeepStall checks verify --deep against NAR downloads that
// break: a body that stalls after its first bytes (toxiproxy's slicer
// with an endless delay) and connections cut after 256 KiB (limit_data)
// are remote failures, exit 5 naming the endpoint, not corrupt NARs, and
// verify ends. The same cut with time to resume passes.
func TestCLIVerifyDeepStall(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-stall")
	blob := nixtest.Build(t, f, "blob")[0] // a 12 MiB NAR
	key, _ := signing.GenerateSecretKey("cli-stall-1")
	srv := s3test.Start(t, s3test.VersityGW)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	if code, _, stderr := runBin(t, env, "push", "--cache", srv.URL, blob); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	for _, tc := range []struct {
		name, typ string
		attrs     map[string]any
		want      string
	}{
		{"stall", "slicer", map[string]any{"average_size": 64 << 10, "size_variation": 0, "delay": int64(time.Hour / time.Microsecond)}, "no "},
		{"cut", "limit_data", map[string]any{"bytes": 256 << 10}, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			x := s3test.NewToxi(t, srv.Endpoint)
			x.Toxic(t, tc.name, tc.typ, "downstream", tc.attrs)
			code, stdout, stderr := runBin(t, env, append(append([]string{}, tight...), "verify", "--cache", x.StoreURL(srv.Bucket), "--deep")...)
			checkRemoteExit(t, x.Endpoint, code, stderr, tc.want)
			if strings.Contains(stdout+stderr, "fault") {
				t.Errorf("verify reported faults for a broken download:\n%s%s", stdout, stderr)
			}
		})
	}
	t.Run("resumed", func(t *testing.T) {
		t.Parallel()
		x := s3test.NewToxi(t, srv.Endpoint)
		x.Toxic(t, "cut", "limit_data", "downstream", map[string]any{"bytes": 4 << 20})
		code, _, stderr := runBin(t, env, "--stall-timeout", "2s", "verify", "--cache", x.StoreURL(srv.Bucket), "--deep")
		if code != 0 || !strings.Contains(stderr, "retrying GET nar/") {
			t.Errorf("exit %d, want 0 after resumed downloads (WARN lines for them); stderr:\n%s", code, stderr)
		}
	})
}

// TestCLIPushSurvivesRestart pushes a closure through toxiproxy (with some
// latency, so that the push takes a while) and takes the proxy down for
// 15 seconds once the first narinfo has landed, as an S3 server restart
// does: with the default options the push retries (WARN lines), succeeds,
// and leaves a complete cache.
func TestCLIPushSurvivesRestart(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 40, "cli-restart")
	all := nixtest.Build(t, f, "all")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", all)
	key, _ := signing.GenerateSecretKey("cli-restart-1")
	srv := s3test.Start(t, s3test.VersityGW)
	x := s3test.NewToxi(t, srv.Endpoint)
	x.Toxic(t, "slow", "latency", "downstream", map[string]any{"latency": 100})
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())

	cmd := exec.Command(cliBin, "push", "--cache", x.StoreURL(srv.Bucket), "--jobs", "2", all)
	cmd.Env = cliEnv(t, env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	b := srv.Open(t, srv.Bucket)
	for landed := false; !landed; {
		select {
		case err := <-exited:
			t.Fatalf("push ended (%v) before the first narinfo was seen: make it longer; stderr:\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		_ = b.List(t.Context(), "", func(o s3cache.ObjectInfo) error {
			landed = landed || strings.HasSuffix(o.Key, ".narinfo")
			return nil
		})
	}
	x.Disable()
	select {
	case err := <-exited:
		t.Fatalf("push ended (%v) when the server went down; stderr:\n%s", err, stderr.String())
	case <-time.After(15 * time.Second): // the restart
	}
	x.Enable(t)
	if err := <-exited; err != nil {
		t.Fatalf("push across a 15 s restart: %v; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "retrying ") {
		t.Errorf("no retry warnings: the restart missed the push; stderr:\n%s", stderr.String())
	}
	narinfos, _, _ := bucketKeys(t, b)
	for _, p := range closure {
		if !narinfos[storepath.HashPart(p)] {
			t.Errorf("%s is missing from the cache", p)
		}
	}
	if code, stdout, stderr := runBin(t, env, "verify", "--cache", srv.URL, "--deep"); code != 0 {
		t.Errorf("verify --deep after the restart: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestCLIServeSilentBackend starts serve through toxiproxy, then silences
// the backend: a request is answered 502 once --retry-for is spent, with
// WARN lines naming the endpoint in serve's log, and serve goes on.
func TestCLIServeSilentBackend(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	x := s3test.NewToxi(t, srv.Endpoint)
	cmd := exec.Command(cliBin, append(append([]string{}, tight...), "serve", "--cache", x.StoreURL(srv.Bucket), "--listen", "127.0.0.1:0")...)
	cmd.Env = cliEnv(t, creds(srv))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	first := make([]byte, 200)
	n, _ := stdout.Read(first)
	m := regexp.MustCompile(`on (http://127\.0\.0\.1:[0-9]+)`).FindSubmatch(first[:n])
	if m == nil {
		t.Fatalf("serve printed %q; stderr %q", first[:n], stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	x.Toxic(t, "silent", "timeout", "downstream", map[string]any{"timeout": 0})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // a guard against a hang, not a measure
	defer cancel()
	for range 2 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, string(m[1])+"/nix-cache-info", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("serve did not answer: %v; stderr:\n%s", err, stderr.String())
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("status %d, want 502", resp.StatusCode)
		}
	}
	if want := "retrying GET nix-cache-info at " + x.Endpoint + ": no response in 1s (attempt 2)"; !strings.Contains(stderr.String(), want) {
		t.Errorf("serve's log does not say %q:\n%s", want, stderr.String())
	}
}

// TestCLIRemoteHints checks the one-line errors of two set-up mistakes,
// told apart by type rather than by the SDK's words: no AWS credentials
// at all, and an https endpoint that speaks plain HTTP. Both exit 5 at
// once, without retries.
func TestCLIRemoteHints(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, s3test.VersityGW)
	https := "s3://" + srv.Bucket + "?endpoint=" + strings.Replace(srv.Endpoint, "http://", "https://", 1) + "&region=" + s3test.Region
	for _, tc := range []struct {
		name string
		env  []string
		url  string
		want string
	}{
		{"no credentials", nil, srv.URL, "no usable AWS credentials for " + srv.Endpoint},
		{"https to http", creds(srv), https, "speaks plain HTTP; use http:// in endpoint="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runBin(t, tc.env, "stats", "--cache", tc.url)
			if code != exitRemote || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 5 saying %q", code, stderr, tc.want)
			}
			oneErrorLine(t, stderr)
		})
	}
}
