package s3cache

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nixbucket/nixbucket/layout"
)

// tmpPrefix starts the names of a FileBucket's temporary files; List skips
// them and keys may not use it.
const tmpPrefix = ".nixbucket-tmp-"

// FileETagAttr is the extended attribute in which Put records the ETag (MD5)
// of a small object, with the size and modification time it was
// computed for: "<md5 hex> <size> <mtime in ns>". List reports the ETag
// only while the file still has that size and time, so a file rewritten
// in place by another tool (which keeps its attributes) has none.
const FileETagAttr = "user.nixbucket.etag"

// etagMax bounds the objects whose MD5 Put computes: narinfos and
// manifests, not NARs.
const etagMax = 1 << 20

// FileETag returns the value of FileETagAttr that makes List
// report md5 (hex) as the ETag of a file whose size and modification
// time are fi's. Tools that write a FileBucket's directory directly
// (internal/synth) set it as Put does.
func FileETag(md5 string, fi fs.FileInfo) []byte {
	return etagValue(md5, fi.Size(), fi.ModTime())
}

func etagValue(md5 string, size int64, mtime time.Time) []byte {
	return []byte(md5 + " " + strconv.FormatInt(size, 10) + " " + strconv.FormatInt(mtime.UnixNano(), 10))
}

// fileETag returns the ETag recorded for the file at p, of size bytes and
// modified at mtime, or "" (none recorded, or recorded for other content).
func fileETag(p string, size int64, mtime time.Time) string {
	var buf [96]byte
	n, err := syscall.Getxattr(p, FileETagAttr, buf[:])
	if err != nil || n <= 0 {
		return ""
	}
	sum, rest, ok := strings.Cut(string(buf[:n]), " ")
	if !ok || len(sum) != 32 || string(etagValue("", size, mtime)) != " "+rest {
		return ""
	}
	return sum
}

// FileBucket is a Bucket in a local directory, as Nix's file:// binary
// cache (src/libstore/local-binary-cache-store.cc): key "nar/x.nar.xz" is
// the file DIR/nar/x.nar.xz. Writes go to a temporary file in the target's
// directory and are renamed into place, so readers never see a partial
// object. A file cannot store a content type: Stat and List derive it
// from the key (Nix's type, see layout.ContentType, else
// application/octet-stream). List reports the ETag (MD5) of the small
// objects Put wrote (see FileETagAttr), so that a root manifest can vouch
// for a narinfo here as on S3. Keys "a" and "a/b" cannot both
// exist.
type FileBucket struct {
	dir string
}

var (
	_ Bucket     = (*FileBucket)(nil)
	_ InfoGetter = (*FileBucket)(nil)
)

// NewFileBucket returns the bucket in directory dir, which must be
// absolute; it is created by the first Put.
func NewFileBucket(dir string) (*FileBucket, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("opening file bucket %q: directory must be absolute", dir)
	}
	return &FileBucket{dir: filepath.Clean(dir)}, nil
}

// contentType is the media type a FileBucket reports for key: Nix's
// (layout.ContentType), else application/octet-stream.
func contentType(key string) string {
	if t := layout.ContentType(key); t != "" {
		return t
	}
	return "application/octet-stream"
}

// path maps a key to its file, rejecting keys that could escape the
// directory or collide with temporary files.
func (f *FileBucket) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.ContainsRune(key, 0) {
		return "", fmt.Errorf("%w %q", ErrInvalidKey, key)
	}
	for c := range strings.SplitSeq(key, "/") {
		if c == "" || c == "." || c == ".." || strings.HasPrefix(c, tmpPrefix) {
			return "", fmt.Errorf("%w %q: component %q", ErrInvalidKey, key, c)
		}
	}
	return filepath.Join(f.dir, filepath.FromSlash(key)), nil
}

func (f *FileBucket) info(key string, fi fs.FileInfo) ObjectInfo {
	return ObjectInfo{
		Key:          key,
		Size:         fi.Size(),
		LastModified: fi.ModTime().UTC(),
		ContentType:  contentType(key),
	}
}

// Stat implements Bucket.
func (f *FileBucket) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	p, err := f.path(key)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stating: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("stating %s: %w", key, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return ObjectInfo{}, fileErr("stating", key, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("stating %s: %w", key, ErrNotFound)
	}
	info := f.info(key, fi)
	if _, ok := layout.NarInfoHash(key); ok {
		fh, err := os.Open(p)
		if err != nil {
			return ObjectInfo{}, fileErr("stating", key, err)
		}
		defer fh.Close()
		info.ContentEncoding = sniffFile(fh, fi.Size())
	}
	return info, nil
}

// sniffFile returns the compression a narinfo file is stored in, "" for
// none (sniffNarInfo).
func sniffFile(fh *os.File, size int64) string {
	head := make([]byte, len(narInfoStart))
	n, _ := fh.ReadAt(head, 0)
	return sniffNarInfo(head[:n], func() ([]byte, error) {
		return readAtMost(io.NewSectionReader(fh, 0, size), MaxDecodedNarInfo)
	})
}

// fileErr wraps an os error, adding ErrNotFound when the file is absent.
func fileErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("%s %s: %w: %w", op, key, ErrNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// Get implements Bucket.
func (f *FileBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := f.GetWithInfo(ctx, key)
	return rc, err
}

// GetWithInfo implements InfoGetter.
func (f *FileBucket) GetWithInfo(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("getting: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("getting %s: %w", key, err)
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, ObjectInfo{}, fileErr("getting", key, err)
	}
	fi, err := fh.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		fh.Close()
		return nil, ObjectInfo{}, fmt.Errorf("getting %s: %w", key, ErrNotFound)
	}
	info := f.info(key, fi)
	if _, ok := layout.NarInfoHash(key); ok {
		// A narinfo stored compressed (copied from an S3 cache written
		// with narinfo-compression) is read decoded.
		info.ContentEncoding = sniffFile(fh, fi.Size())
	}
	return decoded(key, fh, info)
}

// Put implements Bucket: it writes a temporary file next to the target
// and renames it into place once complete.
func (f *FileBucket) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (err error) {
	p, err := f.path(key)
	if err != nil {
		return fmt.Errorf("putting: %w", err)
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	src := io.Reader(ctxReader{ctx, r})
	if size >= 0 {
		src = ctxReader{ctx, io.LimitReader(r, size+1)}
	}
	var sum hash.Hash
	dst := io.Writer(tmp)
	if size >= 0 && size <= etagMax {
		sum = md5.New()
		dst = io.MultiWriter(tmp, sum)
	}
	n, err := io.Copy(dst, src)
	if err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	if err := checkSize(key, size, n); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	if sum != nil {
		// Best effort: a file system without user attributes lists no ETag.
		if fi, err := os.Lstat(tmp.Name()); err == nil {
			_ = syscall.Setxattr(tmp.Name(), FileETagAttr, FileETag(hex.EncodeToString(sum.Sum(nil)), fi), 0)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	return nil
}

// List implements Bucket (see ListAfter).
func (f *FileBucket) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return f.ListAfter(ctx, prefix, "", fn)
}

// ListAfter implements RangeLister. It streams the keys in order, walking
// the directories depth first, each read once, its entries sorted as
// their keys sort (a directory's name as if followed by "/"), and skips
// the directories that cannot hold a key under prefix after startAfter.
// It holds the names of one directory per level, not the listing.
func (f *FileBucket) ListAfter(ctx context.Context, prefix, startAfter string, fn func(ObjectInfo) error) error {
	w := walker{f: f, prefix: prefix, after: startAfter, fn: fn}
	err := w.dir(ctx, "")
	if stop, ok := err.(errStop); ok {
		return stop.err
	}
	if err != nil {
		return fmt.Errorf("listing %s in %s: %w", prefix, f.dir, err)
	}
	return nil
}

// errStop carries fn's error out of the walk, to be returned unwrapped.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// walker is one ListAfter.
type walker struct {
	f             *FileBucket
	prefix, after string
	fn            func(ObjectInfo) error
}

// wants reports whether keys under the directory key d ("" or ending in
// "/") can be listed: under prefix and not all at or before after.
func (w *walker) wants(d string) bool {
	if !strings.HasPrefix(d, w.prefix) && !strings.HasPrefix(w.prefix, d) {
		return false
	}
	return w.after < d || strings.HasPrefix(w.after, d)
}

// dir lists the directory of key prefix d ("" for the bucket's).
func (w *walker) dir(ctx context.Context, d string) error {
	if !w.wants(d) {
		return nil
	}
	dirPath := filepath.Join(w.f.dir, filepath.FromSlash(d))
	fh, err := os.Open(dirPath)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil // deleted meanwhile, or not created yet
	}
	if err != nil {
		return err
	}
	defer fh.Close()
	names, err := fh.Readdirnames(-1)
	if err != nil {
		return err
	}
	slices.Sort(names)
	// A directory's keys sort after the names it is a prefix of with a
	// byte below '/' ("nar-x" < "nar/…"): it waits on a stack, whose top
	// is its smallest, until a key greater than its own comes.
	var pending []string
	flush := func(before string) error {
		for len(pending) > 0 && (before == "" || pending[len(pending)-1] < before) {
			sub := pending[len(pending)-1]
			pending = pending[:len(pending)-1]
			if err := w.dir(ctx, sub); err != nil {
				return err
			}
		}
		return nil
	}
	dirfd := int(fh.Fd())
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		// fstatat relative to the open directory: no path to build and
		// walk for each of a million files.
		var st unix.Stat_t
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			continue // deleted meanwhile
		}
		if err != nil {
			return &fs.PathError{Op: "fstatat", Path: filepath.Join(dirPath, name), Err: err}
		}
		key := d + name
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := flush(key + "/"); err != nil {
				return err
			}
			pending = append(pending, key+"/")
			continue
		case unix.S_IFREG:
		default:
			continue
		}
		if !strings.HasPrefix(key, w.prefix) || key <= w.after {
			continue
		}
		if err := flush(key); err != nil {
			return err
		}
		mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
		info := ObjectInfo{Key: key, Size: st.Size, LastModified: mtime.UTC(), ContentType: contentType(key)}
		if st.Size <= etagMax {
			info.ETag = fileETag(filepath.Join(dirPath, name), st.Size, mtime)
		}
		if err := w.fn(info); err != nil {
			return errStop{err}
		}
	}
	return flush("")
}

// Delete implements Bucket.
func (f *FileBucket) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		p, err := f.path(key)
		if err != nil {
			return fmt.Errorf("deleting: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("deleting %s: %w", key, err)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deleting %s: %w", key, err)
		}
	}
	return nil
}
