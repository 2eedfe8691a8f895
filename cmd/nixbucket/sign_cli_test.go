package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/resign"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
)

// signResult runs sign with --json and decodes its result.
func signResult(t *testing.T, env []string, wantCode int, args ...string) (*resign.Result, string) {
	t.Helper()
	code, stdout, stderr := runBin(t, env, append([]string{"sign", "--json"}, args...)...)
	if code != wantCode {
		t.Fatalf("sign %q: exit %d, want %d: %s", args, code, wantCode, stderr)
	}
	var res resign.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("sign --json printed %q: %v", stdout, err)
	}
	return &res, stdout + stderr
}

// writeKey writes a new secret key named name to a file in dir.
func writeKey(t *testing.T, dir, name string) (*signing.SecretKey, string) {
	t.Helper()
	k, err := signing.GenerateSecretKey(name)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name+".sec")
	if err := os.WriteFile(f, []byte(k.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	return k, f
}

// TestSignRotation rotates a cache from key A to key B with real Nix
// reading it through serve: pushed with A, Nix trusting only B refuses
// the closure; `sign --root` with B, trusting A, signs every path of the
// root's newest manifest, and Nix trusting only B substitutes it; a second
// `sign --all` (B from the URL's secret-key=, A from
// NIXBUCKET_TRUSTED_PUBLIC_KEYS) writes nothing; `--remove-signatures-by A` alone drops A's
// signatures: Nix trusting only A refuses, Nix trusting B still
// substitutes. No secret key is ever printed.
func TestSignRotation(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 5, "cli-sign")
	app := nixtest.Build(t, f, "app")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", app)
	dir := t.TempDir()
	a, aFile := writeKey(t, dir, "sign-a-1")
	b, bFile := writeKey(t, dir, "sign-b-1")
	srv := s3test.Start(t, s3test.MinIO)
	name := srv.NewBucket(t)
	u := srv.StoreURL(name)
	env := creds(srv)
	if code, _, stderr := runBin(t, env, "push", "--cache", u, "--secret-key-file", aFile, "--root", "app", app); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	bucket := srv.Open(t, name)
	web := httptest.NewServer(serve.Handler(bucket, nil))
	defer web.Close()
	substitute := func(key *signing.SecretKey) error {
		t.Helper()
		root, err := nixtest.Substitute(t, web.URL, key.PublicKey().String(), closure)
		if err == nil {
			nixtest.AssertInStore(t, root, closure)
		}
		return err
	}
	if substitute(b) == nil {
		t.Fatalf("Nix trusting only B substituted the closure before it was signed with B")
	}
	var printed []string

	res, out := signResult(t, env, 0, "--cache", u, "--root", "app", "--secret-key-file", bFile, "--trusted-public-key", a.PublicKey().String())
	printed = append(printed, out)
	if res.NarInfos != len(closure) || res.Signed != len(closure) || res.Rewritten != len(closure) ||
		len(res.Unvouched) != 0 || len(res.Manifests) != 1 || !strings.HasPrefix(res.Manifests[0], "roots/app/") {
		t.Errorf("sign --root app: %s", out)
	}
	if err := substitute(b); err != nil {
		t.Fatalf("Nix trusting only B could not substitute the re-signed closure: %v", err)
	}

	before := listing(t, bucket)
	// The key from the URL, the trusted key from the environment.
	res, out = signResult(t, append(env, "NIXBUCKET_TRUSTED_PUBLIC_KEYS="+a.PublicKey().String()), 0, "--cache", u+"&secret-key="+bFile, "--all")
	printed = append(printed, out)
	if res.Rewritten != 0 || res.Unchanged != len(closure) {
		t.Errorf("second sign --all: %s; want nothing rewritten", out)
	}
	if after := listing(t, bucket); !slices.Equal(before, after) {
		t.Errorf("a second sign changed the bucket:\n%q\n%q", before, after)
	}

	res, out = signResult(t, env, 0, "--cache", u, "--all", "--remove-signatures-by", a.Name())
	printed = append(printed, out)
	if res.RemovedSignatures != len(closure) || res.Rewritten != len(closure) || res.Signed != 0 {
		t.Errorf("sign --remove-signatures-by A: %s", out)
	}
	if substitute(a) == nil {
		t.Errorf("Nix trusting only A substituted the closure after A's signatures were removed")
	}
	if err := substitute(b); err != nil {
		t.Errorf("Nix trusting only B could not substitute after A's signatures were removed: %v", err)
	}
	for _, k := range []*signing.SecretKey{a, b} {
		_, secret, _ := strings.Cut(k.Encode(), ":")
		for _, o := range printed {
			if strings.Contains(o, secret) || strings.Contains(o, secret[:16]) {
				t.Errorf("sign printed the secret key %s", k.Name())
			}
		}
	}
}

// TestSignCommand: what sign refuses as usage (exit 2 or 4); in a cache
// pushed with key A where an attacker wrote one narinfo signed by a key of
// its own and one unsigned, signing with B trusting A lists those two
// (unvouched, on stderr, then one error line, exit 1), signs the others
// and leaves those two as they were; a dry run's text, and a path not in
// the cache.
func TestSignCommand(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-sign-cmd")
	app := nixtest.Build(t, f, "app")[0]
	lib := nixtest.Build(t, f, "lib")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", app)
	dir := t.TempDir()
	a, aFile := writeKey(t, dir, "sign-cmd-a-1")
	_, bFile := writeKey(t, dir, "sign-cmd-b-1")
	evil, _ := signing.GenerateSecretKey("evil-1")
	srv := s3test.Start(t, s3test.MinIO)
	name := srv.NewBucket(t)
	u := srv.StoreURL(name)
	env := creds(srv)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"no selection", []string{"--secret-key-file", bFile}, exitUsage},
		{"two selections", []string{"--secret-key-file", bFile, "--all", lib}, exitUsage},
		{"not a path", []string{"--secret-key-file", bFile, "hello"}, exitUsage},
		{"bad root name", []string{"--secret-key-file", bFile, "--root", "a/b"}, exitUsage},
		{"no key, nothing to remove", []string{"--all"}, exitBadKey},
		{"sign with and remove one key", []string{"--all", "--secret-key-file", aFile, "--remove-signatures-by", a.Name()}, exitUsage},
		{"bad trusted key", []string{"--all", "--secret-key-file", bFile, "--trusted-public-key", "x:y"}, exitBadKey},
	} {
		code, stdout, stderr := runBin(t, env, append([]string{"sign", "--cache", u}, tc.args...)...)
		if code != tc.code || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q; want exit %d", tc.name, code, stdout, tc.code)
		}
		oneErrorLine(t, stderr)
	}

	if code, _, stderr := runBin(t, env, "push", "--cache", u, "--secret-key-file", aFile, app); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	bucket := srv.Open(t, name)
	var unsigned string
	for _, p := range closure {
		if p != app && p != lib {
			unsigned = p
		}
	}
	spoil(t, bucket, layout.NarInfoKeyOf(lib), func(text []byte) []byte {
		ni, _ := narinfo.ParseString(string(text))
		fp, _ := ni.Fingerprint()
		ni.Sigs = []string{evil.Sign([]byte(fp))}
		return []byte(ni.String())
	})
	spoil(t, bucket, layout.NarInfoKeyOf(unsigned), func(text []byte) []byte {
		ni, _ := narinfo.ParseString(string(text))
		ni.Sigs = nil
		return []byte(ni.String())
	})
	before := listing(t, bucket)

	gone := "/nix/store/00000000000000000000000000000000-gone"
	code, stdout, stderr := runBin(t, env, "sign", "--cache", u, "--dry-run", "--secret-key-file", bFile,
		"--trusted-public-key", a.PublicKey().String(), lib, gone)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != exitFailure || len(lines) != 3 || lines[0] != "unvouched "+lib+": signed only by untrusted keys: evil-1" ||
		lines[1] != "missing "+gone+": not in the cache" || !strings.HasPrefix(lines[2], "nixbucket: 1 narinfos left alone") {
		t.Errorf("sign of a hostile and a missing path: exit %d, stderr:\n%s", code, stderr)
	}
	if want := "would sign 0 of 1 narinfos (0 rewritten, 0 signatures removed); 0 unchanged, 1 unvouched\n"; stdout != want {
		t.Errorf("dry run printed %q, want %q", stdout, want)
	}
	if after := listing(t, bucket); !slices.Equal(before, after) {
		t.Errorf("a dry run changed the bucket")
	}

	res, out := signResult(t, env, exitFailure, "--cache", u, "--all", "--secret-key-file", bFile, "--trusted-public-key", a.PublicKey().String())
	if want := sortedCopy(lib, unsigned); !slices.Equal(res.Unvouched, want) || res.Signed != len(closure)-2 || res.NarInfos != len(closure) {
		t.Errorf("sign --all with two hostile narinfos: %s; want %q unvouched, the other %d signed", out, want, len(closure)-2)
	}
	after := listing(t, bucket)
	for _, p := range []string{lib, unsigned} {
		k := layout.NarInfoKeyOf(p)
		if i, j := slices.IndexFunc(before, func(s string) bool { return strings.HasPrefix(s, k+" ") }),
			slices.IndexFunc(after, func(s string) bool { return strings.HasPrefix(s, k+" ") }); i < 0 || j < 0 || before[i] != after[j] {
			t.Errorf("the hostile narinfo %s was rewritten", k)
		}
	}

	// A gc's exclusive lock keeps sign from writing; --no-lock does not wait.
	gc, err := lock.Acquire(context.Background(), srv.Open(t, name), lock.Exclusive, lock.Options{Command: "gc"})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Release()
	args := []string{"sign", "--cache", u, "--all", "--remove-signatures-by", "nobody-1"}
	code, _, stderr = runBin(t, env, append(args, "--lock-wait", "0")...)
	if code != exitFailure || !strings.Contains(stderr, "locked") {
		t.Errorf("sign while a gc holds the lock: exit %d, %q; want exit 1, locked", code, stderr)
	}
	oneErrorLine(t, stderr)
	if code, _, stderr := runBin(t, env, append(args, "--no-lock")...); code != 0 {
		t.Errorf("sign --no-lock while a gc holds the lock: exit %d: %s", code, stderr)
	}
}

// sortedCopy returns its arguments, sorted.
func sortedCopy(s ...string) []string {
	slices.Sort(s)
	return s
}
