package nixtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// StartDaemon runs a real `nix-daemon` listening on socket (through
// NIX_DAEMON_SOCKET_PATH; it serves the machine's store), in a process group
// of its own since it forks a worker per connection, and waits until it
// accepts connections. env adds to its environment (e.g. NIX_CONF_DIR, see
// ConfDir). Its output goes to socket + ".log". stop ends the daemon and
// its workers. It suits TestMain; tests use Daemon.
func StartDaemon(socket string, env ...string) (stop func(), err error) {
	if _, err := exec.LookPath("nix-daemon"); err != nil {
		return nil, fmt.Errorf("nix-daemon not found: run `make test` (it installs nix-bin) or `apt-get install nix-bin`: %w", err)
	}
	cmd := exec.Command("nix-daemon")
	cmd.Env = append(append(os.Environ(), env...), "NIX_DAEMON_SOCKET_PATH="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, err := os.Create(socket + ".log")
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		<-exited
	}
	for range 600 {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("nix-daemon exited: %v", err)
		default:
		}
		if c, err := net.Dial("unix", socket); err == nil {
			_ = c.Close()
			return stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("nix-daemon did not listen on %s", socket)
}

// Daemon starts a nix-daemon of the test's own (see StartDaemon), stopped
// when the test ends, and returns its socket path. Clients reach it with
// NIX_REMOTE=daemon and NIX_DAEMON_SOCKET_PATH set to the socket. env adds
// to the daemon's environment. In -short mode it skips the test.
func Daemon(t testing.TB, env ...string) string {
	t.Helper()
	skipShort(t)
	// A socket path must fit in sun_path (108 bytes): t.TempDir can be
	// longer, so the directory is a short one of its own.
	dir, err := os.MkdirTemp("", "nixd")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "socket")
	stop, err := StartDaemon(socket, env...)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting nix-daemon: %v", err)
	}
	t.Cleanup(func() {
		stop()
		os.RemoveAll(dir)
	})
	return socket
}

// ConfDir writes a nix.conf of the machine's /etc/nix/nix.conf (if any)
// followed by lines into a new directory, for NIX_CONF_DIR, and returns
// the directory: a daemon with, say, a post-build-hook of the test's own.
func ConfDir(t testing.TB, lines ...string) string {
	t.Helper()
	conf, err := os.ReadFile("/etc/nix/nix.conf")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, l := range lines {
		conf = append(conf, "\n"+l+"\n"...)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nix.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
