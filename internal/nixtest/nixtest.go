// Package nixtest drives the real Nix (Debian's nix-bin) from tests: it
// builds store paths from small Nix expressions with no nixpkgs, no sandbox
// and no substituters, and runs Nix's own commands as the oracle.
//
// Every `nix` command it runs gets --extra-experimental-features
// nix-command, and every command it runs gets the same setting in
// NIX_CONFIG (for a nix a script runs), so the tests need no
// experimental-features in the machine's nix.conf.
//
// A missing Nix fails the test; it is never skipped, except in -short mode
// (go test -short), which runs no Nix: there Require, Run and Daemon skip.
package nixtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Options are the nix.conf options every test invocation passes, so that a
// machine's own configuration cannot make a test fetch or sandbox.
var Options = []string{
	"--option", "sandbox", "false",
	"--option", "build-users-group", "",
	"--option", "substituters", "",
}

// Features are the experimental features every `nix` command is given,
// whatever the machine's nix.conf enables.
var Features = []string{"--extra-experimental-features", "nix-command"}

// featuresConfig is Features as a NIX_CONFIG line.
const featuresConfig = "extra-experimental-features = nix-command"

// Require fails the test when Nix's commands are not on PATH. In -short
// mode it skips the test instead.
func Require(t testing.TB) {
	t.Helper()
	skipShort(t)
	for _, c := range []string{"nix-build", "nix-store", "nix-instantiate", "nix"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: run `make test` (it installs nix-bin) or `apt-get install nix-bin`", c)
		}
	}
}

// Run runs a command and returns its trimmed stdout; it fails the test on a
// non-zero exit, showing stderr. In -short mode it skips the test.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	skipShort(t)
	out, err := Output(context.Background(), nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// Output runs a command with extra environment entries and returns its
// stdout; a failure's error includes stderr. A `nix` command gets Features
// first; any command gets them in NIX_CONFIG, after the caller's own.
func Output(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	if filepath.Base(name) == "nix" {
		args = append(slices.Clone(Features), args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "NIX_CONFIG="+lastValue(cmd.Env, "NIX_CONFIG")+"\n"+featuresConfig)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// WriteExpr writes a Nix expression into a fresh temporary directory and
// returns the file's path.
func WriteExpr(t testing.TB, expr string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "default.nix")
	if err := os.WriteFile(f, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// Build builds the attributes of the expression in file (all of it when no
// attribute is given) and returns the output paths, one per output.
func Build(t testing.TB, file string, attrs ...string) []string {
	t.Helper()
	Require(t)
	args := append([]string{file, "--no-out-link"}, Options...)
	for _, a := range attrs {
		args = append(args, "-A", a)
	}
	return strings.Fields(Run(t, "nix-build", args...))
}

// Instantiate returns the .drv paths of the attributes of the expression in file.
func Instantiate(t testing.TB, file string, attrs ...string) []string {
	t.Helper()
	Require(t)
	args := []string{file}
	for _, a := range attrs {
		args = append(args, "-A", a)
	}
	return strings.Fields(Run(t, "nix-instantiate", args...))
}

// Lines runs a command and splits its stdout into non-empty lines.
func Lines(t testing.TB, name string, args ...string) []string {
	t.Helper()
	return strings.Fields(Run(t, name, args...))
}

// Derivation returns a Nix expression for an input-addressed derivation
// named name whose builder runs script with /bin/sh (PATH=/usr/bin:/bin).
// Use $out (or other outputs) in script.
func Derivation(name, script string, outputs ...string) string {
	outs := ""
	if len(outputs) > 0 {
		outs = ` outputs = [ "` + strings.Join(outputs, `" "`) + `" ];`
	}
	return `derivation { name = "` + name + `"; system = builtins.currentSystem; builder = "/bin/sh";` +
		` PATH = "/usr/bin:/bin";` + outs + ` args = [ "-c" ''` + "\n" + script + "\n" + `'' ]; }`
}

// PathInfo is one entry of Nix 2.8's `nix path-info --json` list.
type PathInfo struct {
	Path             string   `json:"path"`
	NarHash          string   `json:"narHash"`
	NarSize          uint64   `json:"narSize"`
	References       []string `json:"references"`
	Deriver          string   `json:"deriver"`
	Signatures       []string `json:"signatures"`
	CA               string   `json:"ca"`
	RegistrationTime int64    `json:"registrationTime"`
	Ultimate         bool     `json:"ultimate"`
	// Valid is false for a path the store does not know (nil when valid).
	Valid *bool `json:"valid"`
}

// PathInfos runs `nix path-info --json` on paths, each standing for itself:
// .drv paths are passed with --derivation (which would otherwise turn an
// output into its deriver), the others without. It returns the entries by
// path.
func PathInfos(t testing.TB, paths ...string) map[string]PathInfo {
	t.Helper()
	var drvs, others []string
	for _, p := range paths {
		if strings.HasSuffix(p, ".drv") {
			drvs = append(drvs, p)
		} else {
			others = append(others, p)
		}
	}
	m := make(map[string]PathInfo, len(paths))
	for _, args := range [][]string{append([]string{"--derivation"}, drvs...), others} {
		if len(args) == 0 || len(args) == 1 && args[0] == "--derivation" {
			continue
		}
		out := Run(t, "nix", append([]string{"path-info", "--json"}, args...)...)
		var list []PathInfo
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("parsing nix path-info --json: %v", err)
		}
		for _, i := range list {
			m[i.Path] = i
		}
	}
	return m
}

// Sign has Nix sign path in the store (`nix store sign --key-file`) with a
// new key per name, made by nix-store --generate-binary-cache-key, and
// returns the path's signatures as `nix path-info --json` then reports them.
// Sign a path of the test's own (a derivation with a nonce): signatures
// accumulate in the store.
func Sign(t testing.TB, path string, names ...string) []string {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	for i, name := range names {
		sk, pk := filepath.Join(dir, fmt.Sprint(i, ".sec")), filepath.Join(dir, fmt.Sprint(i, ".pub"))
		Run(t, "nix-store", "--generate-binary-cache-key", name, sk, pk)
		Run(t, "nix", "store", "sign", "--key-file", sk, path)
	}
	return PathInfos(t, path)[path].Signatures
}

// skipShort skips the test in -short mode, which runs no Nix.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: needs Nix")
	}
}

// lastValue returns the value of the last entry of env for key, as exec
// would use it.
func lastValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
