package main

import (
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
