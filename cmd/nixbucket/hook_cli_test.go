package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/queue"
)

// hookDrv instantiates a derivation with two outputs, unique to the test,
// and returns its .drv path and its outputs as Nix lists them.
func hookDrv(t *testing.T) (drv string, outs []string) {
	t.Helper()
	expr := nixtest.WriteExpr(t, nixtest.Derivation("hook-"+s3test.RandomHex(6), "echo a > $out; echo b > $dev", "out", "dev"))
	drvs := nixtest.Instantiate(t, expr)
	if len(drvs) != 1 {
		t.Fatalf("nix-instantiate gave %q", drvs)
	}
	outs = nixtest.Lines(t, "nix-store", "--query", "--outputs", drvs[0])
	slices.Sort(outs)
	return drvs[0], outs
}

// queuedPaths lists the queue's pending paths, sorted.
func queuedPaths(t *testing.T, file string) []string {
	t.Helper()
	q, err := queue.Open(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	es, err := q.Entries(context.Background(), queue.Pending, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Path)
	}
	slices.Sort(out)
	return out
}

// TestHookQueuesOutputs runs the hook as Nix does (DRV_PATH, OUT_PATHS, no
// arguments) and checks the queue holds exactly the derivation's outputs as
// `nix-store --query --outputs` lists them, whether OUT_PATHS names them or
// is empty (Nix 2.8), and when run as nixbucket-hook through a symlink.
func TestHookQueuesOutputs(t *testing.T) {
	drv, outs := hookDrv(t)
	link := filepath.Join(t.TempDir(), hookName)
	if err := os.Symlink(cliBin, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		bin      string
		outPaths string
		flag     bool // --queue rather than NIXBUCKET_QUEUE
	}{
		{name: "OUT_PATHS", bin: cliBin, outPaths: strings.Join(outs, " ")},
		{name: "empty OUT_PATHS", bin: cliBin, outPaths: ""},
		{name: "--queue", bin: cliBin, outPaths: "", flag: true},
		{name: "nixbucket-hook", bin: link, outPaths: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "state", "queue.db")
			env := []string{"DRV_PATH=" + drv, "OUT_PATHS=" + tc.outPaths}
			var args []string
			if tc.bin == cliBin {
				args = []string{"hook"}
			}
			if tc.flag {
				args = append(args, "--queue", file)
			} else {
				env = append(env, queue.EnvVar+"="+file)
			}
			code, stdout, stderr := runExe(t, tc.bin, env, args...)
			if code != 0 || stdout != "" || stderr != "" {
				t.Fatalf("hook: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			if got := queuedPaths(t, file); !slices.Equal(got, outs) {
				t.Errorf("queued %q, want the outputs %q", got, outs)
			}
		})
	}
}

// runExe runs bin (the CLI, or a link to it) like runBin.
func runExe(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	saved := cliBin
	cliBin = bin
	defer func() { cliBin = saved }()
	return runBin(t, env, args...)
}

// TestHookSurvivesQueueProblems checks that every problem the hook can
// survive exits 0, so the build stands, and says so in one line of stderr
// starting "nixbucket hook: ", and that a run outside a hook (no DRV_PATH)
// is a usage error.
func TestHookSurvivesQueueProblems(t *testing.T) {
	drv, outs := hookDrv(t)
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	corrupt := filepath.Join(dir, "corrupt.db")
	garbage := filepath.Join(dir, "garbage.drv")
	for f, data := range map[string]string{notDir: "x", corrupt: strings.Repeat("not a database\n", 1000), garbage: "Derive(([(\"out\""} {
		if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(dir, "good.db")
	for _, tc := range []struct {
		name, queue, drv, out string
		want                  string // in stderr
	}{
		{"queue dir is a file", filepath.Join(notDir, "queue.db"), drv, "", "not a directory"},
		{"corrupt queue", corrupt, drv, "", "not a database"},
		{"missing derivation", good, "/nix/store/00000000000000000000000000000000-gone.drv", "", "unreadable"},
		{"garbage derivation", good, garbage, "", "does not parse"},
		{"empty DRV_PATH", good, "", "", "DRV_PATH"},
		{"OUT_PATHS outside the store", good, drv, "/tmp/x /etc", "not store paths"},
		{"disk full", diskFull(t), drv, "", "full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.queue == "" {
				t.Skip("needs root, to mount a small tmpfs")
			}
			code, stdout, stderr := runBin(t, []string{"DRV_PATH=" + tc.drv, "OUT_PATHS=" + tc.out, queue.EnvVar + "=" + tc.queue}, "hook")
			if code != 0 || stdout != "" {
				t.Fatalf("exit %d (want 0: a hook's failure fails the build), stdout %q", code, stdout)
			}
			if !strings.HasPrefix(stderr, hookPrefix) || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q: want one line starting %q that says %q", stderr, hookPrefix, tc.want)
			}
		})
	}
	t.Run("some OUT_PATHS outside the store", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "q.db")
		code, _, stderr := runBin(t, []string{"DRV_PATH=" + drv, "OUT_PATHS=/tmp/x " + outs[0], queue.EnvVar + "=" + file}, "hook")
		if code != 0 || !strings.Contains(stderr, `"/tmp/x"`) {
			t.Errorf("exit %d, stderr %q: want 0 and the bad path named", code, stderr)
		}
		if got := queuedPaths(t, file); !slices.Equal(got, outs[:1]) {
			t.Errorf("queued %q, want the store path %q", got, outs[:1])
		}
	})
	t.Run("no DRV_PATH", func(t *testing.T) {
		code, _, stderr := runBin(t, []string{queue.EnvVar + "=" + good}, "hook")
		if code != exitUsage || !strings.Contains(stderr, "post-build-hook") {
			t.Errorf("exit %d, stderr %q: want %d and a word on post-build-hook", code, stderr, exitUsage)
		}
	})
}

// diskFull returns a queue file on a small tmpfs the test mounts and fills.
// Mounting needs root; without it, it returns "" and the case is skipped.
func diskFull(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Logf("mounting a tmpfs: %v", err)
		return ""
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	// Fill it: dd stops at ENOSPC.
	_ = exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(dir, "fill"), "bs=4k").Run()
	return filepath.Join(dir, "queue.db")
}

// TestHookInNixConf is the recipe's setup with real Nix: a nix-daemon whose
// nix.conf says post-build-hook = <a symlink nixbucket-hook>, and nothing
// else (NIXBUCKET_QUEUE in its environment stands for root's default
// queue). A build through the daemon must leave the outputs queued.
func TestHookInNixConf(t *testing.T) {
	nixtest.Require(t)
	dir := t.TempDir()
	link := filepath.Join(dir, hookName)
	if err := os.Symlink(cliBin, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "queue.db")
	socket := nixtest.Daemon(t, "NIX_CONF_DIR="+nixtest.ConfDir(t, "post-build-hook = "+link), queue.EnvVar+"="+file)
	// Unique to the run, so that it is built (the hook runs after builds).
	expr := nixtest.WriteExpr(t, nixtest.Derivation("hook-conf-"+s3test.RandomHex(6), "echo a > $out; echo b > $dev", "out", "dev"))
	if _, err := nixtest.Output(context.Background(), []string{"NIX_REMOTE=daemon", "NIX_DAEMON_SOCKET_PATH=" + socket},
		"nix-build", append([]string{expr, "--no-out-link"}, nixtest.Options...)...); err != nil {
		t.Fatalf("nix-build through the daemon: %v", err)
	}
	outs := nixtest.Lines(t, "nix-store", "--query", "--outputs", nixtest.Instantiate(t, expr)[0])
	slices.Sort(outs)
	if got := queuedPaths(t, file); len(outs) != 2 || !slices.Equal(got, outs) {
		t.Errorf("queued %q, the derivation's outputs are %q", got, outs)
	}
}
