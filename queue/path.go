package queue

import (
	"errors"
	"os"
	"path/filepath"
)

// EnvVar names the environment variable that overrides DefaultPath.
const EnvVar = "NIXBUCKET_QUEUE"

// SystemPath is root's queue: where the nix-daemon's post-build-hook (run as
// root) and a system `watch` service meet.
const SystemPath = "/var/lib/nixbucket/queue.db"

// DefaultPath is the queue used without --queue: $NIXBUCKET_QUEUE if set,
// SystemPath for root, else nixbucket/queue.db under $XDG_STATE_HOME
// (default ~/.local/state).
func DefaultPath() (string, error) {
	if p := os.Getenv(EnvVar); p != "" {
		return p, nil
	}
	if IsRoot() {
		return SystemPath, nil
	}
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			return "", errors.New("no queue file: set --queue, NIXBUCKET_QUEUE, XDG_STATE_HOME or HOME")
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "nixbucket", "queue.db"), nil
}

// IsRoot says whether this process runs as root, and so uses SystemPath by
// default.
func IsRoot() bool { return os.Geteuid() == 0 }
