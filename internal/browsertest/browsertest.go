// Package browsertest runs Debian's real headless Chromium for tests of the
// pages nixbucket writes (the release page, the stats page). A missing
// Chromium fails the test; it is never skipped, except in -short mode
// (go test -short), which runs no browser.
package browsertest

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"
)

// Chromium runs headless Chromium with args (e.g. --dump-dom URL, or
// --screenshot=FILE URL) and a fresh profile, with the flags that keep it
// off the network, and returns its stdout.
func Chromium(t *testing.T, args ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short: needs Chromium")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (Debian package chromium; scripts/setup.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %q: %v: %s", args, err, errb.String())
	}
	return out.String()
}
