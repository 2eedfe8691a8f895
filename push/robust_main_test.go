package push_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
	"github.com/nixbucket/nixbucket/verify"
)

// nixbucketBin is the CLI the robustness tests run: $NIXBUCKET_BIN (the
// Makefile's build), else one built by TestMain.
var nixbucketBin string

func TestMain(m *testing.M) {
	if f := os.Getenv(maxRSSFileEnv); f != "" {
		os.Exit(measureRSS(f, os.Args[1:]))
	}
	os.Exit(runMain(m))
}

// maxRSSFileEnv, when set, makes the test binary run its arguments as a
// command and write the command's peak RSS into the file it names.
//
// The peak RSS that wait4 reports for a child of a large process is
// wrong: Go starts children with vfork, and Linux carries the parent's
// RSS high-water mark over the exec (exec_mmap in fs/exec.c), so the child
// of a test process that once held 300 MiB "peaks" at 300 MiB. Started
// from this small wrapper process instead, the child's figure is its own.
const maxRSSFileEnv = "NIXBUCKET_TEST_MAXRSS_FILE"

func measureRSS(file string, args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		_ = os.WriteFile(file, []byte(strconv.FormatInt(ru.Maxrss*1024, 10)), 0o644) // kilobytes on Linux
	}
	return cmd.ProcessState.ExitCode()
}

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // -short runs no binary: nothing to build
	}
	nixbucketBin = os.Getenv("NIXBUCKET_BIN")
	if nixbucketBin == "" {
		dir, err := os.MkdirTemp("", "nixbucket-push-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		nixbucketBin = filepath.Join(dir, "nixbucket")
		cmd := exec.Command("go", "build", "-o", nixbucketBin, "github.com/nixbucket/nixbucket/cmd/nixbucket")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building nixbucket: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// cliEnv is the environment of a CLI run against srv: its credentials,
// the signing key text, and no shared AWS configuration of the machine.
func cliEnv(t *testing.T, srv *s3test.Server, key *signing.SecretKey) []string {
	t.Helper()
	home := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	for _, v := range []string{"NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_REMOTE", "NIX_DAEMON_SOCKET_PATH", "TMPDIR"} {
		if s, ok := os.LookupEnv(v); ok {
			env = append(env, v+"="+s)
		}
	}
	if key != nil {
		env = append(env, "NIXBUCKET_SECRET_KEY="+key.Encode())
	}
	return env
}

// cliResult is the outcome of one CLI run.
type cliResult struct {
	code           int
	stdout, stderr string
	maxRSS         int64 // bytes, when measured
	elapsed        time.Duration
}

// runCLI runs the CLI to completion.
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	return runCLIMeasured(t, false, env, args...)
}

// runCLIMeasured runs the CLI to completion; with measure, through the
// test binary as a wrapper (see maxRSSFileEnv), so that maxRSS is the
// CLI's own peak RSS.
func runCLIMeasured(t *testing.T, measure bool, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(nixbucketBin, args...)
	rssFile := filepath.Join(t.TempDir(), "maxrss")
	if measure {
		cmd = exec.Command(os.Args[0], append([]string{nixbucketBin}, args...)...)
		env = append(slices.Clone(env), maxRSSFileEnv+"="+rssFile)
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running nixbucket %s: %v", strings.Join(args, " "), err)
	}
	if measure {
		b, err := os.ReadFile(rssFile)
		if err != nil {
			t.Fatalf("reading the peak RSS of nixbucket %s: %v", strings.Join(args, " "), err)
		}
		res.maxRSS, _ = strconv.ParseInt(string(b), 10, 64)
	}
	return res
}

// newKey returns a fresh signing key.
func newKey(t *testing.T, name string) *signing.SecretKey {
	t.Helper()
	k, err := signing.GenerateSecretKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// bigExpr is a derivation with a 12 MiB file of random bytes: its NAR is
// uploaded in several multipart parts. No salt: it is built once per
// machine, and every test pushes it into fresh buckets.
var bigExpr = nixtest.Derivation("nixbucket-robust-big", "mkdir $out; head -c 12582912 /dev/urandom > $out/blob; echo small > $out/small")

// checkCache runs verify.Check with Deep (and the trusted key, if given)
// and fails the test on any fault.
func checkCache(t *testing.T, b s3cache.Bucket, key *signing.SecretKey, what string) *verify.Report {
	t.Helper()
	opts := verify.Options{Deep: true, Jobs: 4}
	if key != nil {
		opts.TrustedKeys = signing.NewPublicKeys(key.PublicKey())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := verify.Check(ctx, b, opts)
	if err != nil {
		t.Fatalf("%s: verify: %v", what, err)
	}
	if !r.OK() {
		for i, f := range r.Faults {
			if i == 20 {
				t.Errorf("… and %d more", len(r.Faults)-20)
				break
			}
			t.Errorf("%s: %s", what, f)
		}
		t.FailNow()
	}
	return r
}

// narinfoHashes returns the hash parts of the narinfos in b.
func narinfoHashes(t *testing.T, b s3cache.Bucket) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		if h, ok := layout.NarInfoHash(o.Key); ok {
			out[h] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// listKeys returns every key in b with its size, sorted.
func listKeys(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	var out []string
	err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		out = append(out, fmt.Sprintf("%s %d", o.Key, o.Size))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// unfinishedUploads counts the multipart uploads left in b.
func unfinishedUploads(t *testing.T, b s3cache.Bucket) int {
	t.Helper()
	mp, ok := b.(s3cache.Multiparter)
	if !ok {
		t.Fatalf("%T has no multipart uploads", b)
	}
	n := 0
	if err := mp.ListMultipartUploads(context.Background(), "", func(s3cache.Upload) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// hashParts maps store paths to their narinfo hash parts.
func hashParts(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = storepath.HashPart(p)
	}
	return out
}
