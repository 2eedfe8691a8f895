package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nix-community/go-nix/pkg/wire"
	"github.com/nixbucket/nixbucket/storepath"
)

// errClosed is returned by a Daemon used after Close.
var errClosed = errors.New("store is closed")

// Daemon reads the store through a nix-daemon's worker protocol over its
// unix socket. It keeps a bounded pool of connections (each one a worker
// process in the daemon, used by one goroutine at a time), so concurrent
// callers do not queue on one socket. It is safe for concurrent use.
type Daemon struct {
	dir    string
	socket string
	log    *slog.Logger

	sem    chan struct{} // one token per connection in use
	mu     sync.Mutex
	idle   []*conn
	closed bool

	version    uint64 // negotiated protocol version of the first connection
	nixVersion string
	trusted    uint64
}

var _ Store = (*Daemon)(nil)

// conn is one handshaken connection to the daemon.
type conn struct {
	nc         net.Conn
	r          *bufio.Reader
	w          *bufio.Writer
	version    uint64
	nixVersion string
	trusted    uint64
}

// OpenDaemon connects to the nix-daemon listening at socketPath (normally
// DaemonSocketPath()) for the store directory storeDir (normally storepath.DefaultDir()), and
// performs the handshake once to check it. When nothing listens there, the
// error wraps ErrNoStore.
func OpenDaemon(ctx context.Context, socketPath, storeDir string, opts ...Option) (*Daemon, error) {
	o := newOptions(opts)
	d := &Daemon{dir: storeDir, socket: socketPath, log: o.logger, sem: make(chan struct{}, o.conns)}
	c, err := d.dial(ctx)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: no nix-daemon listening at %s: %w", ErrNoStore, socketPath, err)
		}
		return nil, err
	}
	d.version, d.nixVersion, d.trusted = c.version, c.nixVersion, c.trusted
	d.idle = append(d.idle, c)
	d.log.Debug("connected to nix-daemon", "socket", socketPath, "nix", c.nixVersion,
		"protocol", fmt.Sprintf("1.%d", minor(c.version)))
	return d, nil
}

// Dir returns the store directory.
func (d *Daemon) Dir() string { return d.dir }

// NixVersion returns the daemon's Nix version (protocol ≥ 1.33), or "".
func (d *Daemon) NixVersion() string { return d.nixVersion }

// ProtocolVersion returns the negotiated worker protocol version,
// 1<<8 | minor.
func (d *Daemon) ProtocolVersion() uint64 { return d.version }

// LogValue describes the store for log/slog.
func (d *Daemon) LogValue() slog.Value {
	return slog.GroupValue(slog.String("socket", d.socket), slog.String("nix", d.nixVersion))
}

// Close closes the idle connections; connections in use are closed when
// their call returns.
func (d *Daemon) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	var errs []error
	for _, c := range d.idle {
		errs = append(errs, c.nc.Close())
	}
	d.idle = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing the daemon connections: %w", err)
	}
	return nil
}

// dial connects and performs the handshake (src/libstore/remote-store.cc,
// RemoteStore::initConnection; src/libstore/daemon.cc, processConnection).
func (d *Daemon) dial(ctx context.Context) (*conn, error) {
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "unix", d.socket)
	if err != nil {
		return nil, fmt.Errorf("connecting to nix-daemon: %w", err)
	}
	c := &conn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriter(nc)}
	err = c.withContext(ctx, func() error { return c.handshake(d.log) })
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("connecting to nix-daemon at %s: %w", d.socket, err)
	}
	return c, nil
}

func (c *conn) handshake(log *slog.Logger) error {
	if err := wire.WriteUint64(c.w, workerMagic1); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	var magic, server uint64
	if err := readUints(c.r, &magic, &server); err != nil {
		return fmt.Errorf("reading the daemon's greeting: %w", err)
	}
	if magic != workerMagic2 {
		return fmt.Errorf("%w: greeting %#x is not a nix-daemon's", errProtocol, magic)
	}
	if server>>8 != clientVersion>>8 || minor(server) < minDaemonMinor {
		return fmt.Errorf("nix-daemon protocol %d.%d is not supported (need 1.%d or later)",
			server>>8, minor(server), minDaemonMinor)
	}
	c.version = min(server, clientVersion)
	if err := wire.WriteUint64(c.w, clientVersion); err != nil {
		return err
	}
	// Obsolete CPU affinity (≥ 1.14) and reserveSpace (≥ 1.11): both off.
	if err := wire.WriteUint64(c.w, 0); err != nil {
		return err
	}
	if err := wire.WriteUint64(c.w, 0); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	if minor(c.version) >= 33 {
		var err error
		if c.nixVersion, err = wire.ReadString(c.r, maxPathLen); err != nil {
			return fmt.Errorf("reading the daemon's version: %w", err)
		}
	}
	if minor(c.version) >= 35 {
		if err := readUints(c.r, &c.trusted); err != nil {
			return fmt.Errorf("reading the daemon's trust: %w", err)
		}
	}
	return readStderr(c.r, c.version, log)
}

// withContext runs f with the connection's deadline tied to ctx. On
// cancellation the pending I/O fails and ctx's error is returned.
func (c *conn) withContext(ctx context.Context, f func() error) error {
	dl, _ := ctx.Deadline()
	if err := c.nc.SetDeadline(dl); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	err := f()
	if !stop() {
		// ctx ended while f ran: the deadline is (or is being) moved into
		// the past, so the connection is abandoned whatever f saw.
		return fmt.Errorf("%w: %w", errConnLost, ctx.Err())
	}
	return err
}

// errConnLost marks an operation cut short by its context; its connection
// is not reused.
var errConnLost = errors.New("daemon connection abandoned")

// get takes an idle connection or dials a new one, waiting while all
// connections are in use.
func (d *Daemon) get(ctx context.Context) (*conn, error) {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.sem
		return nil, errClosed
	}
	if n := len(d.idle); n > 0 {
		c := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		return c, nil
	}
	d.mu.Unlock()
	c, err := d.dial(ctx)
	if err != nil {
		<-d.sem
		return nil, err
	}
	return c, nil
}

// put returns a connection to the pool after a successful operation, and
// closes it after a failed one: even after an error the daemon reported in
// good order, the stream may be out of step (a daemon that fails while
// reading its arguments reports the error, then ends the connection).
func (d *Daemon) put(c *conn, err error) {
	d.mu.Lock()
	if err == nil && !d.closed {
		d.idle = append(d.idle, c)
	} else {
		_ = c.nc.Close()
	}
	d.mu.Unlock()
	<-d.sem
}

// do runs one operation: op code and arguments written by send, then the log
// stream, then the reply read by recv.
func (d *Daemon) do(ctx context.Context, op uint64, send func(c *conn) error, recv func(c *conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := d.get(ctx)
	if err != nil {
		return err
	}
	err = c.withContext(ctx, func() error {
		if err := wire.WriteUint64(c.w, op); err != nil {
			return err
		}
		if err := send(c); err != nil {
			return err
		}
		if err := c.w.Flush(); err != nil {
			return err
		}
		if err := readStderr(c.r, c.version, d.log); err != nil {
			return err
		}
		return recv(c)
	})
	d.put(c, err)
	return err
}

// QueryPathInfo returns the info of a valid path (operation QueryPathInfo).
func (d *Daemon) QueryPathInfo(ctx context.Context, path string) (*PathInfo, error) {
	if err := storepath.Check(d.dir, path); err != nil {
		return nil, fmt.Errorf("querying path info: %w", err)
	}
	var info *PathInfo
	err := d.do(ctx, opQueryPathInfo,
		func(c *conn) error { return wire.WriteString(c.w, path) },
		func(c *conn) (err error) { info, err = readPathInfo(c.r, path); return err })
	if err != nil {
		return nil, fmt.Errorf("querying path info of %s: %w", path, err)
	}
	if info == nil {
		return nil, fmt.Errorf("querying path info of %s: %w", path, ErrNotValid)
	}
	return info, nil
}

// QueryValidPaths returns the valid paths among paths, in input order
// (duplicates kept); a malformed path is an error wrapping storepath.ErrInvalid
// (operation QueryValidPaths, without substitution).
func (d *Daemon) QueryValidPaths(ctx context.Context, paths []string) ([]string, error) {
	for _, p := range paths {
		if err := storepath.Check(d.dir, p); err != nil {
			return nil, fmt.Errorf("querying valid paths: %w", err)
		}
	}
	if len(paths) == 0 {
		return nil, nil
	}
	var reply []string
	err := d.do(ctx, opQueryValidPaths,
		func(c *conn) error {
			if err := writeStrings(c.w, paths); err != nil {
				return err
			}
			if minor(c.version) >= 27 {
				return wire.WriteUint64(c.w, 0) // substitute: no
			}
			return nil
		},
		func(c *conn) (err error) { reply, err = readStrings(c.r, maxPathLen); return err })
	if err != nil {
		return nil, fmt.Errorf("querying valid paths: %w", err)
	}
	valid := make(map[string]bool, len(reply))
	for _, p := range reply {
		valid[p] = true
	}
	var out []string
	for _, p := range paths {
		if valid[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// QueryDerivationOutputs maps each output of the valid derivation drvPath to
// its path (operation QueryDerivationOutputMap, protocol ≥ 1.22); outputs
// whose path is not known are absent.
func (d *Daemon) QueryDerivationOutputs(ctx context.Context, drvPath string) (map[string]string, error) {
	if err := storepath.Check(d.dir, drvPath); err != nil {
		return nil, fmt.Errorf("querying derivation outputs: %w", err)
	}
	if minor(d.version) < 22 {
		return nil, fmt.Errorf("querying outputs of %s: nix-daemon protocol 1.%d is older than 1.22", drvPath, minor(d.version))
	}
	outs := map[string]string{}
	err := d.do(ctx, opQueryDerivationOutputMap,
		func(c *conn) error { return wire.WriteString(c.w, drvPath) },
		func(c *conn) error { return readOutputMap(c.r, outs) })
	var de *DaemonError
	if errors.As(err, &de) {
		// The daemon says "path '…' is not valid" in prose; ask plainly.
		if valid, verr := d.QueryValidPaths(ctx, []string{drvPath}); verr == nil && len(valid) == 0 {
			return nil, fmt.Errorf("querying outputs of %s: %w", drvPath, ErrNotValid)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("querying outputs of %s: %w", drvPath, err)
	}
	return outs, nil
}

// readOutputMap reads a map of output name to optional store path into outs,
// dropping unknown ("") paths.
func readOutputMap(r io.Reader, outs map[string]string) error {
	n, err := wire.ReadUint64(r)
	if err != nil {
		return err
	}
	if n > maxListLen {
		return fmt.Errorf("%w: map of %d outputs", errProtocol, n)
	}
	for range n {
		name, err := wire.ReadString(r, maxPathLen)
		if err != nil {
			return err
		}
		p, err := wire.ReadString(r, maxPathLen)
		if err != nil {
			return err
		}
		if p != "" {
			outs[name] = p
		}
	}
	return nil
}
