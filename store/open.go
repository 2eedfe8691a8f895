package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/nixbucket/nixbucket/storepath"
)

// defaultStateDir is the state directory compiled into Debian's and
// upstream's Nix.
const defaultStateDir = "/nix/var/nix"

// StateDir returns Nix's state directory: $NIX_STATE_DIR, else /nix/var/nix.
func StateDir() string {
	return envDir(defaultStateDir, "NIX_STATE_DIR")
}

// DaemonSocketPath returns the nix-daemon socket: $NIX_DAEMON_SOCKET_PATH,
// else <StateDir>/daemon-socket/socket.
func DaemonSocketPath() string {
	return envDir(filepath.Join(StateDir(), "daemon-socket", "socket"), "NIX_DAEMON_SOCKET_PATH")
}

// DBPath returns the path of the store's SQLite database,
// <StateDir>/db/db.sqlite.
func DBPath() string {
	return filepath.Join(StateDir(), "db", "db.sqlite")
}

// envDir returns the first non-empty variable among names, cleaned, or def.
func envDir(def string, names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return filepath.Clean(v)
		}
	}
	return def
}

// Option configures Open, OpenDB and OpenDaemon.
type Option func(*options)

type options struct {
	logger *slog.Logger
	conns  int
}

// WithLogger makes the store log to l (the daemon's log lines, the choice of
// back end, fallbacks). By default nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithConnections bounds the connections the store keeps open at once: to
// the daemon (each is a worker process there), or to the database.
// The default is 4.
func WithConnections(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.conns = n
		}
	}
}

func newOptions(opts []Option) options {
	o := options{logger: slog.New(slog.NewTextHandler(io.Discard, nil)), conns: 4}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Open opens the local store the way Nix chooses it from NIX_REMOTE:
//
//   - unset or "auto": the daemon at DaemonSocketPath when one accepts a
//     connection there, else the database at DBPath read-only;
//   - "local": the database;
//   - "daemon": the daemon at DaemonSocketPath;
//   - "unix://PATH": the daemon at PATH.
//
// The store directory is Dir. When neither a daemon nor a database is there,
// the error wraps ErrNoStore and names what was looked for. Other store URLs
// (ssh://, local?root=…) are not supported: the error wraps
// ErrUnsupportedStore.
func Open(ctx context.Context, opts ...Option) (Store, error) {
	o := newOptions(opts)
	dir := storepath.DefaultDir()
	remote := os.Getenv("NIX_REMOTE")
	switch {
	case remote == "" || remote == "auto":
		sock, db := DaemonSocketPath(), DBPath()
		if _, err := os.Stat(sock); err == nil {
			d, err := OpenDaemon(ctx, sock, dir, opts...)
			if err == nil {
				o.logger.Debug("reading the store through the daemon", "socket", sock)
				return d, nil
			}
			if ctx.Err() != nil {
				return nil, err
			}
			o.logger.Debug("daemon socket present but unusable, trying the database", "socket", sock, "err", err)
		}
		if _, err := os.Stat(db); err != nil {
			return nil, fmt.Errorf("%w: no nix-daemon listening at %s and no database at %s"+
				" (set NIX_REMOTE, NIX_DAEMON_SOCKET_PATH or NIX_STATE_DIR)", ErrNoStore, sock, db)
		}
		o.logger.Debug("reading the store database", "db", db)
		return OpenDB(ctx, db, dir, opts...)
	case remote == "local":
		return OpenDB(ctx, DBPath(), dir, opts...)
	case remote == "daemon":
		return OpenDaemon(ctx, DaemonSocketPath(), dir, opts...)
	case strings.HasPrefix(remote, "unix://"):
		return OpenDaemon(ctx, strings.TrimPrefix(remote, "unix://"), dir, opts...)
	default:
		return nil, fmt.Errorf("opening the store: %w: NIX_REMOTE=%q (use local, daemon or unix://SOCKET)", ErrUnsupportedStore, remote)
	}
}

// notExist wraps ErrNoStore around err when it says a file is missing.
func notExist(err error, what string) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s: %w", ErrNoStore, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
