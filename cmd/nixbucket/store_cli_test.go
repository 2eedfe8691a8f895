package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/signing"
)

// TestStoreCLIBadInput runs path-info, nar and key with one thing wrong at a
// time: each exits with the code the README documents, prints nothing on
// stdout, and says why in exactly one line on stderr.
func TestStoreCLIBadInput(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-store-bad")
	lib := nixtest.Build(t, f, "lib")[0]
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	outside := write("outside", "not in the store\n")
	notValid := "/nix/store/00000000000000000000000000000000-nixbucket-not-there"
	empty := t.TempDir() // an empty store and state directory: no Nix store at all
	emptyStore := filepath.Join(empty, "store")
	noStore := filepath.Join(emptyStore, "00000000000000000000000000000000-x")
	key, err := signing.GenerateSecretKey("cli-store-bad-1")
	if err != nil {
		t.Fatal(err)
	}
	malformed := write("malformed.key", "cli-store-bad-1:bm90IGEga2V5\n")
	public := write("public.key", key.PublicKey().String()+"\n")
	noColon := write("nocolon.key", "garbage\n")
	newKey := filepath.Join(dir, "new.key")

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		says string // a part of the message
	}{
		{"path-info: outside the store", nil, []string{"path-info", outside}, exitNotFound, "not in the Nix store"},
		{"path-info: missing file", nil, []string{"path-info", filepath.Join(dir, "absent")}, exitNotFound, "does not exist"},
		{"path-info: not valid", nil, []string{"path-info", notValid}, exitNotFound, "not valid"},
		{"path-info -r: not valid", nil, []string{"path-info", "-r", lib, notValid}, exitNotFound, "not valid"},
		{"path-info --json: not valid", nil, []string{"path-info", "--json", lib, notValid}, exitNotFound, "not valid"},
		{"path-info: malformed store path", nil, []string{"path-info", "/nix/store/tooshort"}, exitNotFound, "/nix/store/tooshort"},
		{"path-info: no paths", nil, []string{"path-info", "--json"}, exitUsage, "at least one store path"},
		{"path-info: --include-outputs without -r", nil, []string{"path-info", "--include-outputs", lib}, exitUsage, "needs -r"},
		{"path-info: unknown flag", nil, []string{"path-info", "--frobnicate", lib}, exitUsage, "frobnicate"},
		{"path-info: no store (local)", []string{"NIX_REMOTE=local", "NIX_STATE_DIR=" + empty, "NIX_STORE_DIR=" + emptyStore},
			[]string{"path-info", noStore}, exitNotFound, "no Nix store"},
		{"path-info: no store (auto)", []string{"NIX_STATE_DIR=" + empty, "NIX_STORE_DIR=" + emptyStore},
			[]string{"path-info", noStore}, exitNotFound, "no Nix store"},
		{"path-info: no store (daemon)", []string{"NIX_REMOTE=daemon", "NIX_DAEMON_SOCKET_PATH=" + filepath.Join(empty, "socket")},
			[]string{"path-info", lib}, exitNotFound, "no nix-daemon listening"},
		{"path-info: unsupported NIX_REMOTE", []string{"NIX_REMOTE=ssh://build-host"}, []string{"path-info", lib}, exitUsage, "ssh://build-host"},
		{"nar: outside the store", nil, []string{"nar", outside}, exitNotFound, "not in the Nix store"},
		{"nar: not valid", nil, []string{"nar", notValid}, exitNotFound, notValid},
		{"nar --check: not valid", nil, []string{"nar", "--check", notValid}, exitNotFound, "not valid"},
		{"nar --check: no store", []string{"NIX_REMOTE=local", "NIX_STATE_DIR=" + empty}, []string{"nar", "--check", lib}, exitNotFound, "no Nix store"},
		{"nar: two paths", nil, []string{"nar", lib, lib}, exitUsage, "one store path"},
		{"nar: missing file in a store path", nil, []string{"nar", lib + "/absent"}, exitNotFound, lib + "/absent does not exist"},
		{"nar --check: a file in a store path", nil, []string{"nar", "--check", lib + "/absent"}, exitUsage, "needs a store path"},
		{"key public: malformed file", nil, []string{"key", "public", "--secret-key-file", malformed}, exitBadKey, "malformed.key"},
		{"key public: no colon", nil, []string{"key", "public", "--secret-key-file", noColon}, exitBadKey, "found no ':'"},
		{"key public: a public key", nil, []string{"key", "public", "--secret-key-file", public}, exitBadKey, "is this the public key?"},
		{"key public: a directory", nil, []string{"key", "public", "--secret-key-file", dir}, exitBadKey, "is a directory"},
		{"key public: missing file", nil, []string{"key", "public", "--secret-key-file", filepath.Join(dir, "absent.key")}, exitBadKey, "absent.key: no such file"},
		{"key public: malformed NIXBUCKET_SECRET_KEY", []string{"NIXBUCKET_SECRET_KEY=x:AAAA"}, []string{"key", "public"}, exitBadKey, "NIXBUCKET_SECRET_KEY"},
		{"key public: no key", nil, []string{"key", "public"}, exitBadKey, "no secret key"},
		{"key generate: name with a space", nil, []string{"key", "generate", "--name", "a b", "--secret-key-file", newKey}, exitUsage, `"a b"`},
		{"key generate: name with a colon", nil, []string{"key", "generate", "--name", "a:b", "--secret-key-file", newKey}, exitUsage, `"a:b"`},
		{"key generate: empty name", nil, []string{"key", "generate", "--name", "", "--secret-key-file", newKey}, exitUsage, "empty"},
		{"key generate: no name", nil, []string{"key", "generate", "--secret-key-file", newKey}, exitUsage, "--name"},
		{"key generate: no file", nil, []string{"key", "generate", "--name", "x-1"}, exitUsage, "--secret-key-file"},
		{"key generate: an argument", nil, []string{"key", "generate", "--name", "x-1", "--secret-key-file", newKey, "extra"}, exitUsage, "extra"},
		{"key generate: no directory", nil, []string{"key", "generate", "--name", "x-1", "--secret-key-file", filepath.Join(dir, "no", "k")}, exitFailure, "no such file"},
		{"key generate: existing file", nil, []string{"key", "generate", "--name", "x-1", "--secret-key-file", malformed}, exitFailure, "refusing to overwrite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runBin(t, tc.env, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			oneErrorLine(t, stderr)
			if !strings.Contains(stderr, tc.says) {
				t.Errorf("stderr %q does not mention %q", stderr, tc.says)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
	if _, err := os.Lstat(newKey); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed key generate left %s: %v", newKey, err)
	}
	if b, _ := os.ReadFile(malformed); string(b) != "cli-store-bad-1:bm90IGEga2V5\n" {
		t.Errorf("key generate changed an existing file")
	}
}

// TestKeyFileUnreadable reads a key file its user cannot read (running the
// binary as nobody: root reads anything): exit 4, one line, no secret.
func TestKeyFileUnreadable(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped in -short: needs the nixbucket binary")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test runs the binary as user nobody, which needs root (as make test runs)")
	}
	dir, err := os.MkdirTemp("", "nixbucket-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A copy of the binary nobody can run (cliBin may sit in a 0700 directory).
	bin := filepath.Join(dir, "nixbucket")
	data, err := os.ReadFile(cliBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := signing.GenerateSecretKey("cli-unreadable-1")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "root-only.key")
	if err := os.WriteFile(file, []byte(key.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "key", "public", "--secret-key-file", file)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitBadKey {
		t.Fatalf("key public of an unreadable file: %v, want exit %d; stderr %q", err, exitBadKey, stderr.String())
	}
	oneErrorLine(t, stderr.String())
	if !strings.Contains(stderr.String(), file+": permission denied") || stdout.Len() != 0 {
		t.Errorf("stdout %q, stderr %q; want nothing and %s: permission denied", stdout.String(), stderr.String(), file)
	}
	assertNoKeySeed(t, stdout.String()+stderr.String(), key)
}

// TestKeyTextNotEchoed gives the key text where a key file name belongs (a
// CI secret pasted into --secret-key-file or the URL's secret-key=): the
// error says so in one line, exit 4, and shows no piece of the secret, even
// with --verbose. Successful verbose pushes and key commands show none
// either.
func TestKeyTextNotEchoed(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-key-text")
	lib := nixtest.Build(t, f, "lib")[0]
	dir := t.TempDir()
	key, err := signing.GenerateSecretKey("cli-key-text-1")
	if err != nil {
		t.Fatal(err)
	}
	text := key.Encode()
	file := filepath.Join(dir, "cache.key")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cache := func() string { return "file://" + t.TempDir() }

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"key public --secret-key-file", []string{"key", "public", "--secret-key-file", text}},
		{"key nixconf --secret-key-file", []string{"key", "nixconf", "--cache-url", "https://cache.example.org", "--secret-key-file", text}},
		{"push --secret-key-file", []string{"push", "--cache", cache(), "--secret-key-file", text, lib}},
		{"push secret-key= in the URL", []string{"push", "--cache", cache() + "?secret-key=" + text, lib}},
		{"push secret-key= in the URL, escaped", []string{"push", "--cache", cache() + "?secret-key=" + url.QueryEscape(text), lib}},
		{"push --to with secret-key=", []string{"push", "--to", cache() + "?compression=zstd&secret-key=" + text, lib}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runBin(t, nil, append([]string{"--verbose"}, tc.args...)...)
			if code != exitBadKey {
				t.Errorf("exit %d, want %d; stderr %q", code, exitBadKey, stderr)
			}
			if !strings.Contains(stderr, "looks like key text") {
				t.Errorf("stderr %q does not say the file name looks like key text", stderr)
			}
			// --verbose may log debug lines before the error: the error is
			// the last line, and the only one that says "nixbucket: ".
			if strings.Count(stderr, "nixbucket: ") != 1 || !strings.HasPrefix(lastOutputLine(stderr), "nixbucket: ") {
				t.Errorf("stderr does not end in one error line: %q", stderr)
			}
			assertNoKeySeed(t, stdout+stderr, key)
		})
	}

	// Invalid store URLs are quoted in their errors: the key text in them
	// is not.
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"unknown parameter", []string{"push", "--cache", cache() + "?colour=blue&secret-key=" + text, lib}, exitUsage},
		{"bad escape", []string{"push", "--cache", cache() + "?secret-key=" + text + "%zz", lib}, exitUsage},
		{"twice", []string{"push", "--cache", cache() + "?secret-key=" + text + "&secret-key=" + file, lib}, exitUsage},
		{"unsupported scheme", []string{"push", "--cache", "ftp://host/x?secret-key=" + url.QueryEscape(text), lib}, exitUsage},
		{"s3://", []string{"push", "--cache", "s3://nix?endpoint=http://" + closedPort(t) + "&region=garage&secret-key=" + text, lib}, exitBadKey},
		{"init", []string{"init", "--cache", cache() + "?secret-key=" + text}, 0},
		{"stats", []string{"stats", "--cache", cache() + "?secret-key=" + text}, 0},
	} {
		t.Run("store URL: "+tc.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"AWS_ACCESS_KEY_ID=nixbucket-test", "AWS_SECRET_ACCESS_KEY=nixbucket-test"}
			code, stdout, stderr := runBin(t, env, append([]string{"--verbose"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			assertNoKeySeed(t, stdout+stderr, key)
		})
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"push, key file", nil, []string{"push", "--cache", cache(), "--secret-key-file", file, lib}},
		{"push, key file in the URL", nil, []string{"push", "--cache", cache() + "?secret-key=" + file, lib}},
		{"push, NIXBUCKET_SECRET_KEY", []string{"NIXBUCKET_SECRET_KEY=" + text}, []string{"push", "--json", "--cache", cache(), lib}},
		{"key public", nil, []string{"key", "public", "--secret-key-file", file}},
		{"key public, NIXBUCKET_SECRET_KEY", []string{"NIXBUCKET_SECRET_KEY=" + text}, []string{"key", "public"}},
		{"key nixconf", nil, []string{"key", "nixconf", "--cache-url", "https://cache.example.org", "--secret-key-file", file}},
	} {
		t.Run("verbose "+tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runBin(t, tc.env, append([]string{"--verbose"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			assertNoKeySeed(t, stdout+stderr, key)
		})
	}

	t.Run("verbose key generate", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "new.key")
		code, stdout, stderr := runBin(t, nil, "--verbose", "key", "generate", "--name", "cli-key-text-2", "--secret-key-file", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		k, err := signing.ReadSecretKeyFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(stdout) != k.PublicKey().String() {
			t.Errorf("printed %q, want the public key %s", stdout, k.PublicKey())
		}
		assertNoKeySeed(t, stdout+stderr, k)
	})
}

// lastOutputLine is the last line of s.
func lastOutputLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// assertNoKeySeed fails when s holds any 12-character piece of the base64
// of k's secret (the seed and the public half that follows it in Nix's key
// text: a piece of the seed is what matters, the rest is public).
func assertNoKeySeed(t *testing.T, s string, k *signing.SecretKey) {
	t.Helper()
	_, b64, _ := strings.Cut(k.Encode(), ":")
	seed := b64[:43] // the first 32 bytes
	for i := 0; i+12 <= len(seed); i++ {
		if strings.Contains(s, seed[i:i+12]) {
			t.Fatalf("output contains %q, a piece of the secret key:\n%s", seed[i:i+12], s)
		}
	}
}

// versionRe is what `nixbucket version` prints.
var versionRe = regexp.MustCompile(`^nixbucket (\S+)\n$`)

// TestVersionCommand checks `version` and `--version` on the binary under
// test, and on one built here with a version stamped in as the Makefile
// does (-X main.version=…).
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runBin(t, nil, "version")
	m := versionRe.FindStringSubmatch(stdout)
	if code != 0 || stderr != "" || m == nil {
		t.Fatalf("version: exit %d, stdout %q, stderr %q; want one line 'nixbucket VERSION'", code, stdout, stderr)
	}
	code, stdout, _ = runBin(t, nil, "--version")
	if code != 0 || stdout != "nixbucket version "+m[1]+"\n" {
		t.Errorf("--version: exit %d, %q; want the version %s", code, stdout, m[1])
	}

	const stamped = "v9.8.7-test"
	bin := filepath.Join(t.TempDir(), "nixbucket")
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+stamped, "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || string(out) != "nixbucket "+stamped+"\n" {
		t.Errorf("version of a binary stamped %s: %q, %v", stamped, out, err)
	}
}

// TestPathInfoForms checks the forms of path-info against Nix: one path
// without -r, closures with -r and --include-outputs, result links and
// paths inside a store path; and --json -r on both back ends (the database
// and a nix-daemon of the test's own) against nix path-info --json,
// signatures included.
func TestPathInfoForms(t *testing.T) {
	t.Parallel()
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	f := nixtest.Sample(t, 20, "cli-forms")
	app := nixtest.Build(t, f, "app")[0]
	outs := nixtest.Build(t, f, "multi.out", "multi.dev", "multi.doc")
	drv := nixtest.Instantiate(t, f, "app")[0]
	signedExpr := nixtest.WriteExpr(t, `let lib = (import `+f+`).lib; in `+
		nixtest.Derivation("cli-signed", "mkdir $out; echo "+hex.EncodeToString(nonce)+" > $out/n; echo ${lib} > $out/lib"))
	signed := nixtest.Build(t, signedExpr)[0]
	sigs := nixtest.Sign(t, signed, "cli-forms-b-1", "cli-forms-a-1")
	if len(sigs) != 2 {
		t.Fatalf("nix path-info shows the signatures %q, want 2", sigs)
	}
	links := t.TempDir()
	result := filepath.Join(links, "result")
	nixtest.Run(t, "nix-build", append([]string{f, "-A", "multi", "-o", result}, nixtest.Options...)...)
	chain := filepath.Join(links, "chain")
	if err := os.Symlink(result, chain); err != nil {
		t.Fatal(err)
	}
	sorted := func(ps ...string) string {
		ps = slices.Clone(ps)
		slices.Sort(ps)
		return strings.Join(ps, "\n") + "\n"
	}
	nixLines := func(args ...string) string { return sorted(nixtest.Lines(t, "nix-store", args...)...) }

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"one path", []string{app}, app + "\n"},
		{"two paths", []string{outs[1], app}, sorted(app, outs[1])},
		{"the same path twice", []string{app, app}, app + "\n"},
		{"a .drv, not its outputs", []string{drv}, drv + "\n"},
		{"-r", []string{"-r", app}, nixLines("-qR", app)},
		{"--recursive, two roots", []string{"--recursive", app, outs[2]}, nixLines("-qR", app, outs[2])},
		{"-r of a .drv", []string{"-r", drv}, nixLines("-qR", drv)},
		{"-r --include-outputs of a .drv", []string{"-r", "--include-outputs", drv}, nixLines("-qR", "--include-outputs", drv)},
		{"a path inside a store path", []string{outs[0] + "/bin/multi"}, outs[0] + "\n"},
		{"a directory inside a store path", []string{outs[1] + "/include"}, outs[1] + "\n"},
		{"a result link", []string{result}, outs[0] + "\n"},
		{"a link to a result link", []string{chain}, outs[0] + "\n"},
		{"a file behind a result link", []string{result + "/bin/multi"}, outs[0] + "\n"},
		{"-r of a result link", []string{"-r", result}, nixLines("-qR", outs[0])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runBin(t, nil, append([]string{"path-info"}, tc.args...)...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stdout != tc.want {
				t.Errorf("got\n%swant\n%s", stdout, tc.want)
			}
		})
	}

	t.Run("--json of a result link and a path inside", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runBin(t, nil, "path-info", "--json", result, outs[1]+"/include/multi.h")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		comparePathInfo(t, stdout, nixtest.Run(t, "nix", "path-info", "--json", result, outs[1]))
	})

	socket := nixtest.Daemon(t)
	for _, be := range []struct {
		name, log string
		env       []string
	}{
		{"database", "opened the Nix database", []string{"NIX_REMOTE=local"}},
		{"daemon", "connected to nix-daemon", []string{"NIX_REMOTE=daemon", "NIX_DAEMON_SOCKET_PATH=" + socket}},
	} {
		t.Run("--json -r on the "+be.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name     string
				args     []string
				nix      []string
				needSigs bool
			}{
				{"signed", []string{signed}, []string{signed}, true},
				{"closure of the signed path", []string{"-r", signed}, []string{"-r", signed}, true},
				{"closure of app and multi", []string{"-r", app, result}, []string{"-r", app, outs[0]}, false},
				{"closure of a .drv", []string{"-r", drv}, []string{"-r", "--derivation", drv}, false},
			} {
				code, stdout, stderr := runBin(t, be.env, append([]string{"--verbose", "path-info", "--json"}, tc.args...)...)
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", tc.name, code, stderr)
				}
				if !strings.Contains(stderr, be.log) {
					t.Errorf("%s: --verbose does not say %q: the %s back end may not be the one used:\n%s", tc.name, be.log, be.name, stderr)
				}
				want := nixtest.Run(t, "nix", append([]string{"path-info", "--json"}, tc.nix...)...)
				comparePathInfo(t, stdout, want)
				if tc.needSigs && !strings.Contains(stdout, `"signatures":["`+sigs[0]+`","`+sigs[1]+`"]`) {
					t.Errorf("%s: the signatures %q are not in %s", tc.name, sigs, stdout)
				}
			}
		})
	}
}
