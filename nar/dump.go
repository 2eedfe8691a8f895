package nar

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Limits Nix puts on a NAR (src/libutil/archive.cc, narMaxDepth and the
// bounds in parseDump). A node's depth counts the directories above it, the
// root being at depth 0, so the deepest node allowed is at depth MaxDepth-1.
const (
	// MaxDepth bounds the nesting of directories: no node may sit at depth
	// MaxDepth or deeper.
	MaxDepth = 64
	// MaxNameLen is the longest directory entry name, in bytes.
	MaxNameLen = 255
	// MaxTargetLen is the longest symlink target, in bytes.
	MaxTargetLen = 4095
)

var (
	// ErrUnsupportedType is returned (wrapped) when Dump meets a file that is
	// neither a regular file, a directory nor a symlink: a socket, a fifo, a
	// device.
	ErrUnsupportedType = errors.New("unsupported file type")
	// ErrLimit is returned (wrapped) when a tree exceeds one of Nix's NAR
	// limits: MaxDepth, MaxNameLen or MaxTargetLen.
	ErrLimit = errors.New("exceeds a NAR limit")
)

// magic opens every NAR.
const magic = "nix-archive-1"

// bufSize is the size of Dump's buffer: tokens and file contents gather there
// and reach the writer in writes of this size. A quarter MiB stays in the
// cache each copy goes through: dumping a 1 GiB file to /dev/null took 124
// ms with 1 MiB, 113 ms with 256 KiB (nix-store --dump: 104 ms).
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, bufSize)
	return &b
}}

// pathError is an error about one file whose message is written out in full,
// with a sentinel for errors.Is.
type pathError struct {
	msg  string
	kind error
}

func (e *pathError) Error() string { return e.msg }
func (e *pathError) Unwrap() error { return e.kind }

// Dump writes the NAR serialisation of the file, directory or symlink at path
// to w, byte for byte what `nix-store --dump path` writes, and returns the
// number of bytes written. path need not be in the Nix store.
//
// A socket, fifo or device anywhere in the tree fails with an error wrapping
// ErrUnsupportedType that names it; a tree beyond Nix's limits fails with an
// error wrapping ErrLimit. Dump checks ctx before each file and between
// chunks of a file. Its memory is one pooled 1 MiB buffer, whatever the size
// of the files, plus the entry list of each directory being walked; w
// receives writes of up to 1 MiB. On error, w may have received part of the
// NAR.
//
// The path is used as given, as nix-store --dump (2.8) uses it: "link/"
// dumps the directory a symlink points to, "link" the symlink.
func Dump(ctx context.Context, w io.Writer, path string) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	d := dumper{ctx: ctx, w: w, buf: (*bp)[:0]}
	defer func() {
		*bp = d.buf[:0]
		bufPool.Put(bp)
	}()

	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, fmt.Errorf("dumping %s: %w", path, sysErr("lstat", path, err))
	}
	d.str(magic)
	d.node(unix.AT_FDCWD, "", path, uint32(st.Mode)&unix.S_IFMT, 0)
	d.flush()
	if d.err != nil {
		return d.n, fmt.Errorf("dumping %s: %w", path, d.err)
	}
	return d.n, nil
}

// dumper is the state of one Dump. Its methods do nothing once err is set,
// so that a sequence of tokens needs one check at its end.
type dumper struct {
	ctx  context.Context
	w    io.Writer
	buf  []byte // pending output, capacity bufSize
	n    int64  // bytes written to w
	err  error
	link [MaxTargetLen + 1]byte
}

var zeros [8]byte

// padding returns the number of zero bytes that follow n bytes of a string.
func padding(n uint64) int { return int(-n & 7) }

func (d *dumper) flush() {
	if d.err != nil || len(d.buf) == 0 {
		return
	}
	n, err := d.w.Write(d.buf)
	d.n += int64(n)
	if err == nil && n < len(d.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		d.err = fmt.Errorf("writing NAR: %w", err)
	}
	d.buf = d.buf[:0]
}

// reserve makes room for n more bytes in the buffer (n ≤ bufSize).
func (d *dumper) reserve(n int) {
	if len(d.buf)+n > cap(d.buf) {
		d.flush()
	}
}

func (d *dumper) u64(v uint64) {
	d.reserve(8)
	if d.err == nil {
		d.buf = binary.LittleEndian.AppendUint64(d.buf, v)
	}
}

func (d *dumper) str(s string) {
	pad := padding(uint64(len(s)))
	d.reserve(8 + len(s) + pad)
	if d.err != nil {
		return
	}
	d.buf = binary.LittleEndian.AppendUint64(d.buf, uint64(len(s)))
	d.buf = append(d.buf, s...)
	d.buf = append(d.buf, zeros[:pad]...)
}

// join returns the path of name in directory dir ("" for the root, whose
// name is its path).
func join(dir, name string) string {
	switch {
	case dir == "":
		return name
	case dir[len(dir)-1] == '/':
		return dir + name
	default:
		return dir + "/" + name
	}
}

// node writes the node name, in the directory open as dirfd whose path is
// dir; typ is its S_IFMT type from lstat or the directory entry.
func (d *dumper) node(dirfd int, dir, name string, typ uint32, depth int) {
	if d.err != nil {
		return
	}
	if err := d.ctx.Err(); err != nil {
		d.err = err
		return
	}
	if depth >= MaxDepth {
		d.err = &pathError{fmt.Sprintf("path '%s' exceeds maximum NAR directory depth of %d", join(dir, name), MaxDepth), ErrLimit}
		return
	}
	switch typ {
	case unix.S_IFREG:
		d.regular(dirfd, dir, name)
	case unix.S_IFDIR:
		d.directory(dirfd, dir, name, depth)
	case unix.S_IFLNK:
		d.symlink(dirfd, dir, name)
	default:
		d.err = &pathError{fmt.Sprintf("file '%s' has an unsupported type (%s)", join(dir, name), typeName(typ)), ErrUnsupportedType}
	}
}

func typeName(typ uint32) string {
	switch typ {
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	default:
		return fmt.Sprintf("mode %#o", typ)
	}
}

// ifmt maps a directory entry's type to its S_IFMT bits.
func ifmt(t fs.FileMode) uint32 {
	switch t {
	case 0:
		return unix.S_IFREG
	case fs.ModeDir:
		return unix.S_IFDIR
	case fs.ModeSymlink:
		return unix.S_IFLNK
	case fs.ModeSocket:
		return unix.S_IFSOCK
	case fs.ModeNamedPipe:
		return unix.S_IFIFO
	case fs.ModeDevice | fs.ModeCharDevice:
		return unix.S_IFCHR
	case fs.ModeDevice:
		return unix.S_IFBLK
	default:
		return 0
	}
}

// sysErr names the file an error from a system call is about.
func sysErr(op, path string, err error) error {
	return &fs.PathError{Op: op, Path: path, Err: err}
}

func (d *dumper) symlink(dirfd int, dir, name string) {
	n, err := unix.Readlinkat(dirfd, name, d.link[:])
	if err != nil {
		d.err = sysErr("readlink", join(dir, name), err)
		return
	}
	if n > MaxTargetLen {
		d.err = &pathError{fmt.Sprintf("symlink '%s' has a target longer than NAR's limit of %d bytes", join(dir, name), MaxTargetLen), ErrLimit}
		return
	}
	d.str("(")
	d.str("type")
	d.str("symlink")
	d.str("target")
	d.str(string(d.link[:n]))
	d.str(")")
}

func (d *dumper) directory(dirfd int, dir, name string, depth int) {
	path := join(dir, name)
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		d.err = sysErr("open", path, err)
		return
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		d.err = err
		return
	}
	// Nix orders entries by std::string comparison, that is by bytes, as Go
	// compares strings.
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	d.str("(")
	d.str("type")
	d.str("directory")
	for _, e := range entries {
		name := e.Name()
		if len(name) > MaxNameLen {
			d.err = &pathError{fmt.Sprintf("file '%s' has a name of %d bytes, over NAR's limit of %d", join(path, name), len(name), MaxNameLen), ErrLimit}
			return
		}
		d.str("entry")
		d.str("(")
		d.str("name")
		d.str(name)
		d.str("node")
		d.node(fd, path, name, ifmt(e.Type()), depth+1)
		d.str(")")
		if d.err != nil {
			return
		}
	}
	d.str(")")
}

func (d *dumper) regular(dirfd int, dir, name string) {
	// O_NONBLOCK: should the file have become a fifo since it was listed,
	// opening it must not wait for a writer.
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		d.err = sysErr("open", join(dir, name), err)
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		d.err = sysErr("fstat", join(dir, name), err)
		return
	}
	if typ := uint32(st.Mode) & unix.S_IFMT; typ != unix.S_IFREG {
		d.err = fmt.Errorf("file '%s' changed type while being dumped (now %s)", join(dir, name), typeName(typ))
		return
	}
	d.str("(")
	d.str("type")
	d.str("regular")
	if st.Mode&unix.S_IXUSR != 0 { // the only mode bit Nix records
		d.str("executable")
		d.str("")
	}
	d.str("contents")
	size := uint64(st.Size)
	d.u64(size)
	for left := size; left > 0 && d.err == nil; {
		if len(d.buf) == cap(d.buf) {
			d.flush()
			if err := d.ctx.Err(); err != nil && d.err == nil {
				d.err = err
			}
			continue
		}
		room := min(uint64(cap(d.buf)-len(d.buf)), left)
		n, err := read(fd, d.buf[len(d.buf):len(d.buf)+int(room)])
		switch {
		case err != nil:
			d.err = sysErr("read", join(dir, name), err)
		case n == 0:
			d.err = fmt.Errorf("file '%s' shrank while being dumped (%d bytes short)", join(dir, name), left)
		default:
			d.buf = d.buf[:len(d.buf)+n]
			left -= uint64(n)
		}
	}
	d.reserve(8)
	if d.err == nil {
		d.buf = append(d.buf, zeros[:padding(size)]...)
	}
	d.str(")")
}

func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

func read(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
