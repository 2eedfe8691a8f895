package nar_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gonar "github.com/nix-community/go-nix/pkg/nar"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/nar"
)

// enc encodes NAR strings: length, bytes, zero padding.
func enc(strs ...string) []byte {
	var b []byte
	for _, s := range strs {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
		b = append(b, make([]byte, (8-len(s)%8)%8)...)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	magic   = enc("nix-archive-1")
	regular = func(contents string) []byte { return enc("(", "type", "regular", "contents", contents, ")") }
	link    = func(target string) []byte { return enc("(", "type", "symlink", "target", target, ")") }
	entry   = func(name string, node []byte) []byte {
		return cat(enc("entry", "(", "name", name, "node"), node, enc(")"))
	}
	dirNode = func(entries ...[]byte) []byte {
		return cat(enc("(", "type", "directory"), cat(entries...), enc(")"))
	}
)

// deepNAR nests depth directories, the last holding an empty file.
func deepNAR(depth int) []byte {
	node := regular("")
	for range depth {
		node = dirNode(entry("d", node))
	}
	return cat(magic, node)
}

// checkCases are NARs Check must accept or refuse. nix says what Nix 2.8's
// `nix-store --restore` does with them, the oracle: "accept", "reject", or
// "" where restoring depends on the file system rather than the parser.
var checkCases = []struct {
	name string
	nar  []byte
	ok   bool
	nix  string
	msg  string // part of Check's error
}{
	{name: "file", nar: cat(magic, regular("hi")), ok: true, nix: "accept"},
	{name: "empty-file", nar: cat(magic, regular("")), ok: true, nix: "accept"},
	{name: "executable", nar: cat(magic, enc("(", "type", "regular", "executable", "", "contents", "#!", ")")), ok: true, nix: "accept"},
	{name: "symlink", nar: cat(magic, link("../x")), ok: true, nix: "accept"},
	{name: "empty-dir", nar: cat(magic, dirNode()), ok: true, nix: "accept"},
	{name: "dir", nar: cat(magic, dirNode(entry("B", regular("1")), entry("a", dirNode(entry("z", regular("")))),
		entry("a-b", link("a")), entry("a.b", regular("")), entry("\xff", regular("")))), ok: true, nix: "accept"},
	{name: "depth63", nar: deepNAR(63), ok: true, nix: "accept"},
	{name: "name255", nar: cat(magic, dirNode(entry(strings.Repeat("n", 255), regular("")))), ok: true, nix: "accept"},
	{name: "target4095", nar: cat(magic, link(strings.Repeat("t", 4095))), ok: true, nix: "accept"},

	{name: "empty", nar: nil, nix: "reject", msg: "doesn't look like a Nix archive"},
	{name: "bad-magic", nar: cat(enc("nix-archive-2"), regular("")), nix: "reject", msg: "doesn't look like a Nix archive"},
	{name: "huge-magic-length", nar: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, nix: "reject", msg: "doesn't look like"},
	{name: "truncated", nar: cat(magic, regular("hi"))[:80], nix: "reject", msg: "unexpected end"},
	{name: "truncated-contents", nar: cat(magic, enc("(", "type", "regular", "contents"), []byte{0, 0, 0, 0, 0, 0, 0, 64}, []byte("abc")),
		nix: "reject", msg: "unexpected end of NAR in file contents"},
	{name: "no-close", nar: cat(magic, enc("(", "type", "regular", "contents", "")), nix: "reject", msg: "unexpected end"},
	{name: "contents-padding", nar: cat(magic, enc("(", "type", "regular", "contents"), []byte{2, 0, 0, 0, 0, 0, 0, 0, 'h', 'i', 0, 0, 0, 1, 0, 0}, enc(")")),
		nix: "reject", msg: "non-zero padding"},
	{name: "token-padding", nar: cat(magic, []byte{1, 0, 0, 0, 0, 0, 0, 0, '(', 0, 'x', 0, 0, 0, 0, 0}, enc("type", "regular", "contents", "", ")")),
		nix: "reject", msg: "non-zero padding"},
	{name: "executable-value", nar: cat(magic, enc("(", "type", "regular", "executable", "yes", "contents", "", ")")),
		nix: "reject", msg: "at most 0"},
	{name: "unknown-type", nar: cat(magic, enc("(", "type", "fifo", ")")), nix: "reject", msg: `unknown file type "fifo"`},
	{name: "unknown-tag", nar: cat(magic, enc("(", "type", "regular", "size", "", ")")), nix: "reject", msg: `expected tag "contents"`},
	{name: "long-tag", nar: cat(magic, enc("(", "type", strings.Repeat("r", 33))), nix: "reject", msg: "at most 32"},
	{name: "duplicate", nar: cat(magic, dirNode(entry("a", regular("")), entry("a", regular("")))), nix: "reject", msg: "not sorted"},
	{name: "name-dot", nar: cat(magic, dirNode(entry(".", regular("")))), nix: "reject", msg: "invalid file name"},
	{name: "name-dotdot", nar: cat(magic, dirNode(entry("..", regular("")))), nix: "reject", msg: "invalid file name"},
	{name: "name-slash", nar: cat(magic, dirNode(entry("a/b", regular("")))), nix: "reject", msg: "invalid file name"},
	{name: "name-empty", nar: cat(magic, dirNode(entry("", regular("")))), nix: "reject", msg: "invalid file name"},
	{name: "name-nul", nar: cat(magic, dirNode(entry("a\x00b", regular("")))), nix: "reject", msg: "invalid file name"},
	{name: "entry-in-file", nar: cat(magic, enc("(", "type", "regular", "contents", "", "entry")), nix: "reject", msg: `expected tag ")"`},
	{name: "symlink-empty", nar: cat(magic, link("")), nix: "reject", msg: "invalid symlink target"},
	{name: "symlink-nul", nar: cat(magic, link("a\x00b")), msg: "invalid symlink target"},
	// Rules of newer Nix that 2.8 lacks (its parser restores unsorted
	// entries; a file system may refuse long names).
	{name: "unsorted", nar: cat(magic, dirNode(entry("b", regular("")), entry("a", regular("")))), nix: "accept", msg: "not sorted"},
	{name: "depth64", nar: deepNAR(64), nix: "accept", msg: "exceeds maximum depth of 64"},
	{name: "name256", nar: cat(magic, dirNode(entry(strings.Repeat("n", 256), regular("")))), msg: "at most 255"},
	{name: "target4096", nar: cat(magic, link(strings.Repeat("t", 4096))), msg: "at most 4095"},
	// Nix ignores what follows a NAR; Check does not.
	{name: "trailing", nar: cat(magic, regular("hi"), []byte{0}), nix: "accept", msg: "trailing data"},
}

// nixRestore runs `nix-store --restore` on a NAR and reports whether Nix
// accepted it.
func nixRestore(t *testing.T, data []byte) (bool, string) {
	t.Helper()
	cmd := exec.Command("nix-store", "--restore", filepath.Join(t.TempDir(), "out"))
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	return err == nil, string(out)
}

// TestCheck runs Check on hand-made NARs, and compares its verdict with Nix
// 2.8's parser where Nix has the same rule.
func TestCheck(t *testing.T) {
	nixtest.Require(t)
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := nar.Check(bytes.NewReader(tc.nar))
			switch {
			case tc.ok && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case !tc.ok && err == nil:
				t.Errorf("Check = nil, want an error containing %q", tc.msg)
			case !tc.ok && (!errors.Is(err, nar.ErrInvalid) || !strings.Contains(err.Error(), tc.msg)):
				t.Errorf("Check = %v, want an error wrapping ErrInvalid containing %q", err, tc.msg)
			}
			if tc.nix == "" {
				return
			}
			accepted, out := nixRestore(t, tc.nar)
			if want := tc.nix == "accept"; accepted != want {
				t.Errorf("nix-store --restore accepted = %v, want %v: %s", accepted, want, out)
			}
		})
	}
}

// TestCheckNixDumps checks the NARs nix-store --dump writes of the test
// store paths, and that cutting any of them short is refused.
func TestCheckNixDumps(t *testing.T) {
	for name, p := range buildAll(t, storeScripts) {
		data := nixDump(t, p)
		if err := nar.Check(bytes.NewReader(data)); err != nil {
			t.Errorf("Check(nix-store --dump %s) = %v", name, err)
		}
		for _, cut := range []int{0, 1, 8, len(data) / 2, len(data) - 8, len(data) - 1} {
			if err := nar.Check(bytes.NewReader(data[:cut])); !errors.Is(err, nar.ErrInvalid) {
				t.Errorf("Check of %s cut to %d bytes = %v, want ErrInvalid", name, cut, err)
			}
		}
	}
}

// errReader fails after its data.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, e.err
	}
	return n, err
}

// TestCheckReadError checks that an error of the reader is returned as
// itself, not as an invalid NAR.
func TestCheckReadError(t *testing.T) {
	errNet := errors.New("connection reset")
	data := cat(magic, regular(strings.Repeat("x", 1000)))
	for _, cut := range []int{0, 4, 50, 500} {
		err := nar.Check(&errReader{bytes.NewReader(data[:cut]), errNet})
		if !errors.Is(err, errNet) || errors.Is(err, nar.ErrInvalid) {
			t.Errorf("Check of a reader failing after %d bytes = %v, want %v", cut, err, errNet)
		}
	}
}

// FuzzCheck feeds Check arbitrary input. It must not panic, and what it
// accepts must be a NAR: go-nix's independent reader reads it, no strict
// prefix of it is accepted, and a byte more is refused.
func FuzzCheck(f *testing.F) {
	for _, tc := range checkCases {
		f.Add(tc.nar)
	}
	// Whole dumps of real trees, written by Dump (which the tests above
	// hold to nix-store --dump).
	root := f.TempDir()
	_ = os.WriteFile(filepath.Join(root, "f"), []byte("contents"), 0o755)
	_ = os.Symlink("f", filepath.Join(root, "l"))
	_ = os.MkdirAll(filepath.Join(root, "d", "e"), 0o755)
	var buf bytes.Buffer
	if _, err := nar.Dump(context.Background(), &buf, root); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := nar.Check(bytes.NewReader(data)); err != nil {
			if !errors.Is(err, nar.ErrInvalid) {
				t.Fatalf("Check of in-memory data = %v, not ErrInvalid", err)
			}
			return
		}
		r, err := gonar.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Check accepted, go-nix refuses: %v", err)
		}
		for {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Check accepted, go-nix refuses: %v", err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatalf("Check accepted, go-nix refuses contents: %v", err)
			}
		}
		r.Close()
		for _, cut := range []int{len(data) - 1, len(data) / 2} {
			if cut >= 0 && cut < len(data) && nar.Check(bytes.NewReader(data[:cut])) == nil {
				t.Fatalf("Check accepts both a NAR and its first %d bytes", cut)
			}
		}
		if nar.Check(bytes.NewReader(append(bytes.Clone(data), 0))) == nil {
			t.Fatal("Check accepts a NAR followed by a byte")
		}
	})
}
