package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"time"
)

// nixS3 is what this machine's Nix can do with s3:// substituters.
type nixS3 int

const (
	nixS3Unknown nixS3 = iota // no nix, or one that does not list its stores
	nixS3Yes                  // built with S3 support (nixpkgs' Nix)
	nixS3No                   // built without it (Debian's nix-bin 2.8)
)

// nixS3Support asks the nix on PATH whether it can open s3:// stores, from
// the store types it lists (`nix describe-stores --json` up to Nix 2.19,
// `nix help-stores` after): locally, without a request to any bucket. It
// also returns the version nix reports, for the message.
func nixS3Support(ctx context.Context) (nixS3, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nix", "--version").Output()
	if err != nil {
		return nixS3Unknown, ""
	}
	// "nix (Nix) 2.8.0"
	f := strings.Fields(string(out))
	version := ""
	if len(f) > 0 {
		version = f[len(f)-1]
	}
	nix := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "nix", append([]string{"--extra-experimental-features", "nix-command"}, args...)...)
		cmd.Env = append(cmd.Environ(), "PAGER=cat", "NIX_PAGER=cat")
		return cmd.Output()
	}
	if out, err := nix("describe-stores", "--json"); err == nil {
		var stores map[string]json.RawMessage
		if err := json.Unmarshal(out, &stores); err != nil || len(stores) == 0 {
			return nixS3Unknown, version
		}
		for name := range stores {
			if strings.Contains(name, "S3 Binary Cache Store") {
				return nixS3Yes, version
			}
		}
		return nixS3No, version
	}
	out, err = nix("help-stores")
	switch {
	case err != nil || !strings.Contains(string(out), "Binary Cache Store"):
		return nixS3Unknown, version
	case strings.Contains(string(out), "S3 Binary Cache Store"):
		return nixS3Yes, version
	}
	return nixS3No, version
}
