package main

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
)

// TestFlakeParses checks flake.nix with real Nix (nixpkgs cannot be fetched
// here, so the flake is parsed, not built) and that it packages this
// command with buildGoModule.
func TestFlakeParses(t *testing.T) {
	nixtest.Require(t)
	out := nixtest.Run(t, "nix-instantiate", "--parse", "../../flake.nix")
	for _, want := range []string{"buildGoModule", "cmd/nixbucket", "devShells", "mkShell"} {
		if !strings.Contains(out, want) {
			t.Errorf("flake.nix has no %s", want)
		}
	}
}

// vendorHashRe finds the vendorHash in flake.nix.
var vendorHashRe = regexp.MustCompile(`(?m)^\s*vendorHash\s*=\s*"([^"]*)"\s*;`)

// TestFlakeVendorHash recomputes the flake's vendorHash from go.mod and
// go.sum as buildGoModule does: its goModules derivation is the directory
// `go mod vendor` writes, a fixed output whose hash is the SHA-256 of its
// NAR serialisation (nix-hash --type sha256), in SRI form. A stale hash
// would make `nix build` fail; the message gives the value to put there.
func TestFlakeVendorHash(t *testing.T) {
	nixtest.Require(t)
	flake, err := os.ReadFile("../../flake.nix")
	if err != nil {
		t.Fatal(err)
	}
	m := vendorHashRe.FindSubmatch(flake)
	if m == nil {
		t.Fatal(`flake.nix has no vendorHash = "sha256-…"; line (a fakeHash or null cannot build)`)
	}
	have := string(m[1])

	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command("go", "mod", "vendor", "-o", vendor)
	cmd.Dir = "../.."
	// As in the goModules derivation: the flake's env (CGO_ENABLED=0), no
	// GOFLAGS of the caller's (-mod=… would change what vendor does).
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=on")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	sum, err := hex.DecodeString(nixtest.Run(t, "nix-hash", "--type", "sha256", vendor))
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256-" + base64.StdEncoding.EncodeToString(sum); have != want {
		t.Errorf("flake.nix has vendorHash = %q, but go.mod and go.sum vendor to %s:\n"+
			"set vendorHash = \"%s\"; in flake.nix (nix build would fail on the stale hash)", have, want, want)
	}
}
