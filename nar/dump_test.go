package nar_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/nar"
)

// storeScripts are derivations whose outputs cover the NAR cases: a tree
// with every kind of node and awkward name, and roots that are not
// directories.
var storeScripts = map[string]string{
	"tree":      treeScript,
	"rootfile":  `printf 'just a file' > $out`,
	"rootempty": `: > $out`,
	"rootexe":   "printf '#!/bin/sh\\necho hi\\n' > $out; chmod 0755 $out",
	"rootlink":  `ln -s /nix/store/00000000000000000000000000000000-nowhere $out`,
}

// TestDumpMatchesNixStore dumps store paths built by Nix and compares the
// bytes with `nix-store --dump`, and the hash and size with what Nix
// recorded when it registered the path.
func TestDumpMatchesNixStore(t *testing.T) {
	paths := buildAll(t, storeScripts)
	for name, p := range paths {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := dump(t, p)
			want := nixDump(t, p)
			if !bytes.Equal(got, want) {
				t.Fatalf("Dump(%s) differs from nix-store --dump: %s", p, firstDiff(got, want))
			}
			if err := nar.Check(bytes.NewReader(got)); err != nil {
				t.Errorf("Check(Dump(%s)) = %v, want nil", p, err)
			}
			wantHash, wantSize := nixPathInfo(t, p)
			h, n, err := nar.HashPath(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if n != wantSize || !bytes.Equal(h.Digest(), wantHash.Digest()) {
				t.Errorf("HashPath(%s) = %x, %d; nix path-info says %x, %d", p, h.Digest(), n, wantHash.Digest(), wantSize)
			}
		})
	}
}

// TestDumpTreeHasTheCases guards the test itself: the tree Nix built holds
// what treeScript meant it to, so a change in the builder cannot silently
// weaken the comparison above.
func TestDumpTreeHasTheCases(t *testing.T) {
	p := buildAll(t, map[string]string{"tree": treeScript})["tree"]
	nar := dump(t, p)
	for _, want := range []string{"executable", "caf\u00e9", "raw\xffbyte", "new\nline", "with space", strings.Repeat("x", 255),
		"does/not/exist", "/etc/hostname", "../exe", strings.Repeat("y", 4095), "l39"} {
		if !bytes.Contains(nar, []byte(want)) {
			t.Errorf("NAR of the test tree lacks %q", want)
		}
	}
	// Byte order, not locale order: B < a < a b < a-b < a.b < a0 < aa.
	last := -1
	for _, n := range []string{"B", "a", "a b", "a-b", "a.b", "a0", "aa"} {
		entry := append([]byte("name\x00\x00\x00\x00"), byte(len(n)), 0, 0, 0, 0, 0, 0, 0)
		i := bytes.Index(nar[max(last, 0):], append(entry, n...))
		if i >= 0 {
			i += max(last, 0)
		}
		if i < 0 || i < last {
			t.Fatalf("entry %q at %d, after the previous at %d", n, i, last)
		}
		last = i
	}
}

// TestDumpLargeFile compares a store path holding a 100 MiB file, streaming
// both sides through SHA-256.
func TestDumpLargeFile(t *testing.T) {
	p := buildAll(t, map[string]string{
		"large": "mkdir $out; head -c 104857600 /dev/urandom > $out/big; printf tail > $out/small",
	})["large"]
	wantSum, wantSize := nixDumpSum(t, p)
	h := nar.NewHasher()
	n, err := nar.Dump(context.Background(), h, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Hash().Digest()); got != wantSum || n != wantSize || h.Size() != uint64(n) {
		t.Fatalf("Dump(%s): sha256 %s, %d bytes (hasher saw %d); nix-store --dump: %s, %d bytes", p, got, n, h.Size(), wantSum, wantSize)
	}
	if wantSize < 100<<20 {
		t.Fatalf("the NAR is only %d bytes", wantSize)
	}
	wantHash, wantNarSize := nixPathInfo(t, p)
	if err := h.Verify(p, wantHash, wantNarSize); err != nil {
		t.Fatal(err)
	}
}

// mkTree creates files in a temporary directory from a spec: path → func.
func mkTree(t *testing.T, spec map[string]func(p string) error) string {
	t.Helper()
	root := t.TempDir()
	for _, name := range slices.Sorted(maps.Keys(spec)) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := spec[name](p); err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
	}
	return root
}

func file(mode os.FileMode, content string) func(string) error {
	return func(p string) error {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
		return os.Chmod(p, mode) // not subject to umask
	}
}

func symlink(target string) func(string) error {
	return func(p string) error { return os.Symlink(target, p) }
}

func dir(mode os.FileMode) func(string) error {
	return func(p string) error {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		return os.Chmod(p, mode)
	}
}

// nested returns a relative path of depth directories below the root.
func nested(depth int) string {
	parts := make([]string, depth)
	for i := range parts {
		parts[i] = "d"
	}
	return filepath.Join(parts...)
}

// TestDumpMatchesNixOnTempDirs compares with `nix-store --dump` on trees
// that are not store paths, for what a Nix build cannot produce: mode bits
// other than 0444/0555, setuid, unreadable-by-others files, trees right at
// the depth limit, a path given with a trailing slash.
func TestDumpMatchesNixOnTempDirs(t *testing.T) {
	nixtest.Require(t)
	hardlink := func(p string) error {
		if err := os.WriteFile(p+"-orig", []byte("linked"), 0o644); err != nil {
			return err
		}
		return os.Link(p+"-orig", p)
	}
	tests := []struct {
		name string
		spec map[string]func(string) error
		sub  string // what to dump, relative to the root
	}{
		{name: "modes", spec: map[string]func(string) error{
			"u-rw":     file(0o600, "a"),
			"u-rwx":    file(0o700, "b"),
			"g-x-only": file(0o610, "d"),
			"o-x-only": file(0o601, "e"),
			"setuid":   file(0o4755, "f"),
			"sticky":   file(0o1644, "g"),
			"all":      file(0o777, "h"),
			"privdir":  dir(0o700),
			"roexec":   file(0o500, "j"),
		}},
		{name: "hardlink", spec: map[string]func(string) error{"link": hardlink}},
		{name: "depth63", spec: map[string]func(string) error{nested(63): dir(0o755)}},
		{name: "depth62-file", spec: map[string]func(string) error{nested(62) + "/f": file(0o644, "deep")}},
		{name: "root-file", spec: map[string]func(string) error{"f": file(0o755, "root")}, sub: "f"},
		{name: "root-empty-dir", spec: map[string]func(string) error{"e": dir(0o755)}, sub: "e"},
		{name: "root-symlink", spec: map[string]func(string) error{"l": symlink("somewhere/else")}, sub: "l"},
		{name: "trailing-slash", spec: map[string]func(string) error{"d/f": file(0o644, "x"), "l": symlink("d")}, sub: "l/"},
		{name: "sparse", spec: map[string]func(string) error{"s": func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("end"), 3<<20+5); err != nil {
				return err
			}
			return nil
		}}},
	}
	if os.Geteuid() == 0 { // files only root can read
		tests = append(tests, struct {
			name string
			spec map[string]func(string) error
			sub  string
		}{name: "unreadable", spec: map[string]func(string) error{"u-x-only": file(0o100, "c"), "none": file(0o000, "i")}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := mkTree(t, tc.spec)
			p := root
			if tc.sub != "" {
				p = root + "/" + tc.sub
			}
			got := dump(t, p)
			want := nixDump(t, p)
			if !bytes.Equal(got, want) {
				t.Fatalf("Dump(%s) differs from nix-store --dump: %s", p, firstDiff(got, want))
			}
			if err := nar.Check(bytes.NewReader(got)); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

// TestDumpExecutableBit pins the rule the comparison above relies on: the
// owner-execute bit, and only it, makes a file executable.
func TestDumpExecutableBit(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		exec bool
	}{{0o644, false}, {0o755, true}, {0o500, true}, {0o611, false}, {0o4600, false}, {0o4700, true}} {
		root := mkTree(t, map[string]func(string) error{"f": file(tc.mode, "x")})
		got := bytes.Contains(dump(t, root+"/f"), []byte("\x0a\x00\x00\x00\x00\x00\x00\x00executable"))
		if got != tc.exec {
			t.Errorf("mode %#o: executable = %v, want %v", tc.mode, got, tc.exec)
		}
	}
}

// TestDumpRefuses checks the errors: each names the offending file, wraps
// the documented sentinel, and nix-store --dump fails as well where Nix 2.8
// has the rule (it predates the limits).
func TestDumpRefuses(t *testing.T) {
	nixtest.Require(t)
	socket := func(p string) error {
		l, err := net.Listen("unix", p)
		if err != nil {
			return err
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		return l.Close()
	}
	fifo := func(p string) error { return unix.Mkfifo(p, 0o644) }
	type testCase struct {
		name    string
		spec    map[string]func(string) error
		sub     string
		bad     string // the file the error must name, relative to the root
		want    error
		msg     string
		nixFail bool // Nix 2.8 refuses too
	}
	tests := []testCase{
		{name: "socket", spec: map[string]func(string) error{"a": file(0o644, "a"), "sock": socket, "z": file(0o644, "z")},
			bad: "sock", want: nar.ErrUnsupportedType, msg: "has an unsupported type (socket)", nixFail: true},
		{name: "fifo", spec: map[string]func(string) error{"sub/fifo": fifo},
			bad: "sub/fifo", want: nar.ErrUnsupportedType, msg: "has an unsupported type (fifo)", nixFail: true},
		{name: "fifo-root", spec: map[string]func(string) error{"fifo": fifo}, sub: "fifo",
			bad: "fifo", want: nar.ErrUnsupportedType, msg: "has an unsupported type (fifo)", nixFail: true},
		{name: "depth64", spec: map[string]func(string) error{nested(64): dir(0o755)},
			bad: nested(64), want: nar.ErrLimit, msg: "exceeds maximum NAR directory depth of 64"},
		{name: "depth63-file", spec: map[string]func(string) error{nested(63) + "/f": file(0o644, "x")},
			bad: nested(63) + "/f", want: nar.ErrLimit, msg: "exceeds maximum NAR directory depth of 64"},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, testCase{name: "chardev", spec: map[string]func(string) error{"null": func(p string) error {
			return unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
		}}, bad: "null", want: nar.ErrUnsupportedType, msg: "has an unsupported type (character device)", nixFail: true})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := mkTree(t, tc.spec)
			p := root
			if tc.sub != "" {
				p = root + "/" + tc.sub
			}
			_, err := nar.Dump(context.Background(), io.Discard, p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Dump(%s) = %v, want an error wrapping %v", p, err, tc.want)
			}
			badPath := "'" + root + "/" + tc.bad + "'"
			if !strings.Contains(err.Error(), badPath) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Dump error %q does not name %s with %q", err, badPath, tc.msg)
			}
			_, nixErr := nixtest.Output(context.Background(), nil, "nix-store", "--dump", p)
			if tc.nixFail && nixErr == nil {
				t.Errorf("nix-store --dump %s succeeded; the test expects Nix to refuse it too", p)
			}
			if tc.nixFail && nixErr != nil && !strings.Contains(nixErr.Error(), "has an unsupported type") {
				t.Errorf("nix-store --dump %s failed differently: %v", p, nixErr)
			}
		})
	}
}

// TestDumpMissing checks that a path that does not exist is an error
// naming it.
func TestDumpMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nothing")
	_, err := nar.Dump(context.Background(), io.Discard, p)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Dump(%s) = %v, want a not-exist error naming it", p, err)
	}
}

// TestDumpMemory dumps a 1 GiB (sparse) file and checks that Dump's
// allocations do not grow with it.
func TestDumpMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: slow (dumps 1 GiB)")
	}
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 1<<30); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := nar.Dump(context.Background(), io.Discard, p)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// magic 24 + "(" "type" "regular" "contents" 4×16 + size 8 + ")" 16
	if want := int64(1<<30 + 112); n != want {
		t.Errorf("Dump wrote %d bytes, want %d", n, want)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("dumping 1 GiB allocated %d bytes; heap in use %d bytes", allocated, after.HeapInuse)
	if allocated > 16<<20 {
		t.Errorf("Dump of a 1 GiB file allocated %d bytes, want < 16 MiB", allocated)
	}
	if after.HeapInuse > 16<<20+before.HeapInuse {
		t.Errorf("heap in use grew from %d to %d bytes", before.HeapInuse, after.HeapInuse)
	}
}

// cancelWriter cancels a context on its first write.
type cancelWriter struct {
	cancel context.CancelFunc
	n      int64
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.cancel()
	w.n += int64(len(p))
	return len(p), nil
}

// TestDumpCancel checks that Dump stops soon after ctx is cancelled: within
// a file, and before it starts.
func TestDumpCancel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 64<<20); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelWriter{cancel: cancel}
	_, err := nar.Dump(ctx, w, p)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dump with a cancelled context = %v, want context.Canceled", err)
	}
	if w.n > 2<<20 {
		t.Errorf("Dump wrote %d bytes after cancellation, want at most 2 MiB", w.n)
	}
	n, err := nar.Dump(ctx, io.Discard, t.TempDir())
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("Dump with a context cancelled before = %d, %v; want 0, context.Canceled", n, err)
	}
}

// failWriter fails every write.
type failWriter struct{}

var errDiskFull = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// TestDumpWriteError checks that a failing writer's error comes back.
func TestDumpWriteError(t *testing.T) {
	_, err := nar.Dump(context.Background(), failWriter{}, t.TempDir())
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("Dump to a failing writer = %v, want %v", err, errDiskFull)
	}
}
