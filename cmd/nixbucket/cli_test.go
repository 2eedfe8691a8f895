package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// cliBin is the binary under test: $NIXBUCKET_BIN (the Makefile's build),
// else one built by TestMain.
var cliBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // -short runs no binary: nothing to build
	}
	cliBin = os.Getenv("NIXBUCKET_BIN")
	if cliBin == "" {
		dir, err := os.MkdirTemp("", "nixbucket-cli-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cliBin = filepath.Join(dir, "nixbucket")
		cmd := exec.Command("go", "build", "-o", cliBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building nixbucket: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// runBin runs the binary with exactly the environment env (plus PATH and a
// private HOME) and returns its exit code, stdout and stderr.
func runBin(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	return runIn(t, env, "", args...)
}

// runIn runs the CLI with stdin in an environment of its own: PATH, a
// fresh HOME with no AWS configuration, and env.
func runIn(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: needs the nixbucket binary")
	}
	cmd := exec.Command(cliBin, args...)
	cmd.Env = cliEnv(t, env)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running nixbucket: %v", err)
	}
	return code, stdout.String(), stderr.String()
}

// cliEnv is the environment runIn gives the CLI.
func cliEnv(t *testing.T, env []string) []string {
	t.Helper()
	home := t.TempDir()
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}, env...)
}

// oneErrorLine checks that stderr is exactly one line "nixbucket: …".
func oneErrorLine(t *testing.T, stderr string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "nixbucket: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr is not one line starting 'nixbucket: ': %q", stderr)
	}
}

func creds(srv *s3test.Server) []string {
	return []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
}

// listing returns the keys and sizes in a bucket, sorted.
func listing(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	var out []string
	err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		out = append(out, fmt.Sprintf("%s %d %s", o.Key, o.Size, o.ETag))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestPushBadInput runs `push` with one thing wrong at a time against each
// real server: every run exits with the documented code, says why in one
// line on stderr, and leaves the bucket as it was.
func TestPushBadInput(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 5, "cli-bad")
	paths := nixtest.Build(t, f, "lib", "app")
	key, err := signing.GenerateSecretKey("cli-bad-1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	goodKey := filepath.Join(dir, "good.key")
	badKey := filepath.Join(dir, "bad.key")
	os.WriteFile(goodKey, []byte(key.Encode()), 0o600)
	os.WriteFile(badKey, []byte("cli-bad-1:bm90IGEga2V5"), 0o600)
	outside := filepath.Join(dir, "outside")
	os.WriteFile(outside, []byte("not in the store"), 0o644)
	notInStore := "/nix/store/00000000000000000000000000000000-nixbucket-not-there"
	unreachable := closedPort(t)

	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			b := srv.Open(t, srv.Bucket)
			// A first push, so that the bucket has something to lose.
			env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
			if code, _, stderr := runBin(t, env, "push", "--cache", srv.URL, paths[0]); code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			before := listing(t, b)
			if len(before) == 0 {
				t.Fatal("the first push wrote nothing")
			}
			withKey := func(env ...string) []string { return append(env, "NIXBUCKET_SECRET_KEY="+key.Encode()) }
			cases := []struct {
				name string
				env  []string
				args []string
				code int
				says string // a part of the message
			}{
				{"wrong secret", withKey("AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY=wrong-secret"),
					[]string{"--cache", srv.URL, paths[1]}, exitRemote, "access denied"},
				{"unknown access key", withKey("AWS_ACCESS_KEY_ID=NOSUCHKEY", "AWS_SECRET_ACCESS_KEY="+srv.SecretKey),
					[]string{"--cache", srv.URL, paths[1]}, exitRemote, "access denied"},
				{"missing bucket", withKey(creds(srv)...),
					[]string{"--cache", srv.StoreURL("no-such-bucket"), paths[1]}, exitRemote, `bucket "no-such-bucket" does not exist`},
				{"unreachable endpoint", withKey(append(creds(srv), "NIXBUCKET_RETRY_FOR=1ns")...), // no retries: one line
					[]string{"--cache", "s3://" + srv.Bucket + "?endpoint=http://" + unreachable + "&region=garage", paths[1]}, exitRemote, "cannot reach"},
				{"unknown URL parameter", withKey(creds(srv)...),
					[]string{"--cache", srv.URL + "&colour=blue", paths[1]}, exitUsage, "colour"},
				{"bad compression parameter", withKey(creds(srv)...),
					[]string{"--cache", srv.URL + "&compression=lzma9", paths[1]}, exitUsage, "compression"},
				{"no cache", withKey(creds(srv)...), []string{paths[1]}, exitUsage, "--cache"},
				{"missing key file", creds(srv),
					[]string{"--cache", srv.URL, "--secret-key-file", filepath.Join(dir, "absent.key"), paths[1]}, exitBadKey, "absent.key"},
				{"malformed key file", creds(srv),
					[]string{"--cache", srv.URL, "--secret-key-file", badKey, paths[1]}, exitBadKey, "bad.key"},
				{"missing key file in the URL", creds(srv),
					[]string{"--cache", srv.URL + "&secret-key=" + filepath.Join(dir, "absent.key"), paths[1]}, exitBadKey, "absent.key"},
				{"malformed NIXBUCKET_SECRET_KEY", append(creds(srv), "NIXBUCKET_SECRET_KEY=cli-bad-1:garbage"),
					[]string{"--cache", srv.URL, paths[1]}, exitBadKey, "NIXBUCKET_SECRET_KEY"},
				{"path not in the store", withKey(creds(srv)...),
					[]string{"--cache", srv.URL, notInStore}, exitNotFound, notInStore},
				{"path outside the store", withKey(creds(srv)...),
					[]string{"--cache", srv.URL, outside}, exitNotFound, outside},
				{"missing file", withKey(creds(srv)...),
					[]string{"--cache", srv.URL, filepath.Join(dir, "absent")}, exitNotFound, "absent"},
				{"unknown flag", withKey(creds(srv)...),
					[]string{"--cache", srv.URL, "--frobnicate", paths[1]}, exitUsage, "frobnicate"},
				{"no jobs", withKey(creds(srv)...),
					[]string{"--cache", srv.URL, "--jobs", "0", paths[1]}, exitUsage, "--jobs"},
				{"no paths", withKey(creds(srv)...), []string{"--cache", srv.URL}, exitUsage, "store paths"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					code, stdout, stderr := runBin(t, tc.env, append([]string{"push"}, tc.args...)...)
					if code != tc.code {
						t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
					}
					oneErrorLine(t, stderr)
					t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
					if !strings.Contains(stderr, tc.says) {
						t.Errorf("stderr %q does not mention %q", stderr, tc.says)
					}
					if strings.Contains(stderr+stdout, srv.SecretKey) || strings.Contains(stderr+stdout, key.Encode()[len("cli-bad-1:"):]) {
						t.Errorf("a secret was printed: %q %q", stdout, stderr)
					}
					if stdout != "" {
						t.Errorf("stdout %q, want nothing", stdout)
					}
					if after := listing(t, b); !slices.Equal(after, before) {
						t.Errorf("the bucket changed:\nbefore %v\nafter  %v", before, after)
					}
				})
			}
		})
	}
}

// TestVerifyCommand runs `verify` on a bucket that push filled: clean, it
// prints one line and exits 0; with a NAR deleted, it names the fault and
// exits 1; a malformed trusted key is a bad key (4).
func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 5, "cli-verify")
	app := nixtest.Build(t, f, "app")[0]
	key, _ := signing.GenerateSecretKey("cli-verify-1")
	srv := s3test.Start(t, s3test.VersityGW)
	env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
	if code, _, stderr := runBin(t, env, "push", "--cache", srv.URL, app); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	pub := key.PublicKey().String()
	code, stdout, stderr := runBin(t, creds(srv), "verify", "--cache", srv.URL, "--deep", "--trusted-public-key", pub)
	if code != 0 || stderr != "" || strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(stdout, "ok: ") {
		t.Fatalf("verify of a clean cache: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	t.Logf("%s", stdout)

	other, _ := signing.GenerateSecretKey("other-1")
	code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", srv.URL, "--trusted-public-key", other.PublicKey().String())
	if code != exitFailure || !strings.Contains(stdout, "unsigned ") {
		t.Errorf("verify with another key: exit %d, stdout %q", code, stdout)
	}
	oneErrorLine(t, stderr)

	code, _, stderr = runBin(t, creds(srv), "verify", "--cache", srv.URL, "--trusted-public-key", "cli-verify-1:short")
	if code != exitBadKey {
		t.Errorf("verify with a malformed key: exit %d, want %d", code, exitBadKey)
	}
	oneErrorLine(t, stderr)

	b := srv.Open(t, srv.Bucket)
	var nars []string
	b.List(context.Background(), "nar/", func(o s3cache.ObjectInfo) error { nars = append(nars, o.Key); return nil })
	if err := b.Delete(context.Background(), nars[0]); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runBin(t, creds(srv), "verify", "--cache", srv.URL, "--json")
	if code != exitFailure {
		t.Errorf("verify after deleting %s: exit %d, want %d", nars[0], code, exitFailure)
	}
	oneErrorLine(t, stderr)
	var r verify.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("verify --json: %v: %q", err, stdout)
	}
	if len(r.Faults) != 1 || r.Faults[0].Kind != verify.KindMissingNAR || !strings.Contains(r.Faults[0].Detail, nars[0]) {
		t.Errorf("faults %+v, want one missing-nar naming %s", r.Faults, nars[0])
	}
}

// TestKeyCommands checks key generate (mode 0600, never overwrites) and
// key public against Nix's own conversion.
func TestKeyCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "cache.key")
	code, stdout, stderr := runBin(t, nil, "key", "generate", "--name", "cli-key-1", "--secret-key-file", file)
	if code != 0 || stderr != "" {
		t.Fatalf("key generate: exit %d, stderr %q", code, stderr)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	secret, _ := os.ReadFile(file)
	want, err := nixtest.Output(context.Background(), nil, "sh", "-c", "nix key convert-secret-to-public < "+file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(stdout) != strings.TrimSpace(string(want)) || !strings.HasPrefix(stdout, "cli-key-1:") {
		t.Errorf("key generate printed %q, nix says the public key is %q", stdout, want)
	}
	if strings.Contains(stdout, strings.TrimPrefix(string(secret), "cli-key-1:")) {
		t.Errorf("key generate printed the secret")
	}

	code, _, stderr = runBin(t, nil, "key", "generate", "--name", "cli-key-2", "--secret-key-file", file)
	if code != exitFailure || !strings.Contains(stderr, "refusing to overwrite") {
		t.Errorf("key generate over an existing file: exit %d, stderr %q", code, stderr)
	}
	oneErrorLine(t, stderr)
	if again, _ := os.ReadFile(file); !bytes.Equal(again, secret) {
		t.Errorf("key generate overwrote the key file")
	}

	for _, c := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"key", "public", "--secret-key-file", file}},
		{[]string{"NIXBUCKET_SECRET_KEY=" + string(secret)}, []string{"key", "public"}},
	} {
		code, stdout, stderr := runBin(t, c.env, c.args...)
		if code != 0 || strings.TrimSpace(stdout) != strings.TrimSpace(string(want)) {
			t.Errorf("%v: exit %d, %q (stderr %q), want %q", c.args, code, stdout, stderr, want)
		}
	}
	code, _, stderr = runBin(t, nil, "key", "public")
	if code != exitBadKey {
		t.Errorf("key public without a key: exit %d, want %d", code, exitBadKey)
	}
	oneErrorLine(t, stderr)
}

// TestStoreCommands compares path-info --json with nix path-info --json,
// and nar with nix-store --dump, and checks that result links work.
func TestStoreCommands(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 10, "cli-store")
	all := nixtest.Build(t, f, "all")[0]
	drv := nixtest.Instantiate(t, f, "all")[0]

	t.Run("path-info", func(t *testing.T) {
		code, stdout, stderr := runBin(t, nil, "path-info", "--json", "-r", all)
		if code != 0 {
			t.Fatalf("path-info: exit %d: %s", code, stderr)
		}
		nixOut := nixtest.Run(t, "nix", "path-info", "--json", "-r", all)
		comparePathInfo(t, stdout, nixOut)

		code, stdout, stderr = runBin(t, nil, "path-info", "--json", "-r", drv)
		if code != 0 {
			t.Fatalf("path-info of a .drv: exit %d: %s", code, stderr)
		}
		comparePathInfo(t, stdout, nixtest.Run(t, "nix", "path-info", "--json", "-r", "--derivation", drv))
	})

	t.Run("nar", func(t *testing.T) {
		for _, p := range nixtest.Lines(t, "nix-store", "-qR", all)[:6] {
			code, stdout, stderr := runBin(t, nil, "nar", p)
			if code != 0 {
				t.Fatalf("nar %s: exit %d: %s", p, code, stderr)
			}
			want, err := exec.Command("nix-store", "--dump", p).Output()
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256([]byte(stdout)) != sha256.Sum256(want) {
				t.Errorf("nar %s: %d bytes, nix-store --dump gives %d other bytes", p, len(stdout), len(want))
			}
		}
		// A path inside a store path: that file or directory alone.
		inside := 0
		for _, p := range nixtest.Lines(t, "nix-store", "-qR", all) {
			entries, err := os.ReadDir(p)
			if err != nil || len(entries) == 0 {
				continue
			}
			sub := filepath.Join(p, entries[0].Name())
			code, stdout, stderr := runBin(t, nil, "nar", sub)
			want, err := exec.Command("nix-store", "--dump", sub).Output()
			if err != nil {
				t.Fatal(err)
			}
			if code != 0 || stdout != string(want) {
				t.Errorf("nar %s: exit %d, %d bytes (stderr %q), nix-store --dump gives %d bytes", sub, code, len(stdout), stderr, len(want))
			}
			if inside++; inside == 3 {
				break
			}
		}
		if inside == 0 {
			t.Error("the sample closure has no directory to dump a path inside of")
		}
	})

	t.Run("result link", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "result")
		nixtest.Run(t, "nix-build", append([]string{f, "-A", "app", "-o", link}, nixtest.Options...)...)
		target, err := os.Readlink(link)
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runBin(t, nil, "path-info", link)
		if code != 0 || stdout != target+"\n" {
			t.Errorf("path-info %s: exit %d, %q (stderr %q), want %s", link, code, stdout, stderr, target)
		}
		code, stdout, stderr = runBin(t, nil, "nar", link)
		want, _ := exec.Command("nix-store", "--dump", target).Output()
		if code != 0 || stdout != string(want) {
			t.Errorf("nar %s: exit %d, %d bytes (stderr %q), want the %d bytes of %s", link, code, len(stdout), stderr, len(want), target)
		}
		code, _, stderr = runBin(t, nil, "nar", filepath.Join(t.TempDir(), "no-result"))
		if code != exitNotFound {
			t.Errorf("nar of a missing link: exit %d, want %d", code, exitNotFound)
		}
		oneErrorLine(t, stderr)
	})
}

// comparePathInfo compares two `path-info --json` lists path by path.
func comparePathInfo(t *testing.T, got, want string) {
	t.Helper()
	index := func(js string) map[string]map[string]any {
		var list []map[string]any
		if err := json.Unmarshal([]byte(js), &list); err != nil {
			t.Fatalf("path-info --json: %v: %q", err, js)
		}
		m := map[string]map[string]any{}
		for _, e := range list {
			m[e["path"].(string)] = e
		}
		return m
	}
	g, w := index(got), index(want)
	if len(g) != len(w) || len(w) == 0 {
		t.Errorf("%d paths, nix path-info gives %d", len(g), len(w))
	}
	for p, we := range w {
		if ge := g[p]; !reflect.DeepEqual(ge, we) {
			t.Errorf("path-info of %s:\n got %v\nwant %v", p, ge, we)
		}
	}
}
