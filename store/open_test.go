package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

func TestDirs(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		env                    map[string]string
		store, state, sock, db string
	}{
		{"defaults", nil, "/nix/store", "/nix/var/nix", "/nix/var/nix/daemon-socket/socket", "/nix/var/nix/db/db.sqlite"},
		{"NIX_STORE_DIR", map[string]string{"NIX_STORE_DIR": "/x/store/"}, "/x/store", "/nix/var/nix",
			"/nix/var/nix/daemon-socket/socket", "/nix/var/nix/db/db.sqlite"},
		{"NIX_STORE", map[string]string{"NIX_STORE": "/y/store"}, "/y/store", "/nix/var/nix",
			"/nix/var/nix/daemon-socket/socket", "/nix/var/nix/db/db.sqlite"},
		{"NIX_STORE_DIR before NIX_STORE", map[string]string{"NIX_STORE_DIR": "/x//store/.", "NIX_STORE": "/y/store"}, "/x/store",
			"/nix/var/nix", "/nix/var/nix/daemon-socket/socket", "/nix/var/nix/db/db.sqlite"},
		{"NIX_STATE_DIR", map[string]string{"NIX_STATE_DIR": "/s"}, "/nix/store", "/s", "/s/daemon-socket/socket", "/s/db/db.sqlite"},
		{"NIX_DAEMON_SOCKET_PATH", map[string]string{"NIX_STATE_DIR": "/s", "NIX_DAEMON_SOCKET_PATH": "/run/sock"},
			"/nix/store", "/s", "/run/sock", "/s/db/db.sqlite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"NIX_STORE_DIR", "NIX_STORE", "NIX_STATE_DIR", "NIX_DAEMON_SOCKET_PATH"} {
				t.Setenv(k, tc.env[k])
			}
			for _, c := range [][2]string{
				{storepath.DefaultDir(), tc.store}, {store.StateDir(), tc.state}, {store.DaemonSocketPath(), tc.sock}, {store.DBPath(), tc.db},
			} {
				if c[0] != c[1] {
					t.Errorf("got %s, want %s", c[0], c[1])
				}
			}
		})
	}
}

// TestOpen checks the choice of back end from NIX_REMOTE and the daemon
// socket, as Nix makes it, and that each store opened answers.
func TestOpen(t *testing.T) {
	f := getFixture(t)
	empty := t.TempDir()
	notSocket := filepath.Join(empty, "not-a-socket")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const db, daemon, noStore, unsupported = "db", "daemon", "no store", "unsupported"
	for _, tc := range []struct {
		name, remote, state, socket string
		want                        string
	}{
		{"auto with a daemon", "", "", daemonSocket, daemon},
		{"auto spelt out", "auto", "", daemonSocket, daemon},
		{"auto without a daemon", "", "", filepath.Join(empty, "socket"), db},
		{"auto with a dead socket", "", "", notSocket, db},
		{"local", "local", "", daemonSocket, db},
		{"daemon", "daemon", "", daemonSocket, daemon},
		{"unix://", "unix://" + daemonSocket, "", filepath.Join(empty, "socket"), daemon},
		{"auto, no store", "", empty, "", noStore},
		{"local, no store", "local", empty, "", noStore},
		{"daemon, no store", "daemon", empty, "", noStore},
		{"daemon, dead socket", "daemon", "", notSocket, noStore},
		{"unsupported", "ssh://host", "", "", unsupported},
		{"unsupported local?root=", "local?root=/tmp/x", "", "", unsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NIX_REMOTE", tc.remote)
			t.Setenv("NIX_STATE_DIR", tc.state)
			t.Setenv("NIX_DAEMON_SOCKET_PATH", tc.socket)
			s, err := store.Open(context.Background())
			switch tc.want {
			case noStore:
				if !errors.Is(err, store.ErrNoStore) {
					t.Fatalf("Open: err = %v, want ErrNoStore", err)
				}
				if !strings.Contains(err.Error(), empty) {
					t.Errorf("error %q does not say where it looked (%s)", err, empty)
				}
				return
			case unsupported:
				if !errors.Is(err, store.ErrUnsupportedStore) || errors.Is(err, store.ErrNoStore) || !strings.Contains(err.Error(), tc.remote) {
					t.Fatalf("Open: err = %v, want ErrUnsupportedStore naming %s", err, tc.remote)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			var got string
			switch s.(type) {
			case *store.DB:
				got = db
			case *store.Daemon:
				got = daemon
			}
			if got != tc.want {
				t.Errorf("Open chose %T, want %s", s, tc.want)
			}
			if _, err := s.QueryPathInfo(context.Background(), f.top); err != nil {
				t.Errorf("QueryPathInfo: %v", err)
			}
		})
	}
}

// TestDaemonVersion checks the handshake against the daemon's own account
// of itself: the Nix version it sends is the one `nix-daemon --version`
// prints, and Nix 2.8 speaks protocol 1.34.
func TestDaemonVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: needs nix-daemon")
	}
	d, err := store.OpenDaemon(context.Background(), daemonSocket, storepath.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out := nixtest.Run(t, "nix-daemon", "--version") // "nix-daemon (Nix) 2.8.0"
	if want := out[strings.LastIndexByte(out, ' ')+1:]; d.NixVersion() != want {
		t.Errorf("NixVersion() = %q, nix-daemon --version says %q", d.NixVersion(), out)
	}
	if strings.HasPrefix(d.NixVersion(), "2.8.") && d.ProtocolVersion() != 1<<8|34 {
		t.Errorf("ProtocolVersion() = %#x, want 1.34 with Nix 2.8", d.ProtocolVersion())
	}
}
