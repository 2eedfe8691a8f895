package s3cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nixbucket/nixbucket/layout"
)

// tmpPrefix starts the names of a FileBucket's temporary files; List skips
// them and keys may not use it.
const tmpPrefix = ".nixbucket-tmp-"

// FileBucket is a Bucket in a local directory, as Nix's file:// binary
// cache (src/libstore/local-binary-cache-store.cc): key "nar/x.nar.xz" is
// the file DIR/nar/x.nar.xz. Writes go to a temporary file in the target's
// directory and are renamed into place, so readers never see a partial
// object. A file cannot store a content type: Stat and List derive it
// from the key (Nix's type, see layout.ContentType, else
// application/octet-stream). Keys "a" and "a/b" cannot both
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
	return f.info(key, fi), nil
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
	return fh, f.info(key, fi), nil
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
	n, err := io.Copy(tmp, src)
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
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	return nil
}

// List implements Bucket. It walks only the directory that holds prefix,
// and sorts the keys before calling fn.
func (f *FileBucket) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	root := f.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		sub := prefix[:i]
		if _, err := f.path(sub); err != nil {
			return nil // no key can have this prefix
		}
		root = filepath.Join(f.dir, filepath.FromSlash(sub))
	}
	var infos []ObjectInfo
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(f.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		infos = append(infos, f.info(key, fi))
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing %s in %s: %w", prefix, f.dir, err)
	}
	slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
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
