package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// DefaultPrefix is where releases live in the bucket, as in the seed.
const DefaultPrefix = "_releases/"

// Cache-Control values of published objects.
const (
	// BinaryCacheControl is for binaries and checksums: a version may be
	// re-published (a re-run pipeline), so they are cached for an hour.
	BinaryCacheControl = "public, max-age=3600"
	// IndexCacheControl is for the release page and JSON, which change with
	// every publication: caches revalidate them.
	IndexCacheControl = "no-cache"
)

// ChecksumSuffix ends the key of a binary's SHA-256 file.
const ChecksumSuffix = ".sha256"

// ErrBadName is returned (wrapped) for an empty or unusable version,
// target or prefix.
var ErrBadName = errors.New("invalid release name")

// ErrNoFile is returned (wrapped) when a file to publish is missing or is
// not a regular file.
var ErrNoFile = errors.New("file to publish not found")

// CheckName checks that s can be one path component of a release key: not
// empty, not "." or "..", with no slash, no control character and no
// white space at either end (a blank CI variable, a stray space). what
// names it in the error ("version", "target").
func CheckName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrBadName, what)
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%w: %s %q is only white space", ErrBadName, what, s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%w: %s %q starts or ends with white space", ErrBadName, what, s)
	case s == "." || s == "..":
		return fmt.Errorf("%w: %s %q", ErrBadName, what, s)
	case strings.Contains(s, "/"):
		return fmt.Errorf("%w: %s %q contains a slash", ErrBadName, what, s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %s %q contains a control character", ErrBadName, what, s)
	}
	return nil
}

// NormalizePrefix returns prefix ending with exactly one slash; an empty
// prefix, one that starts with a slash or has empty components, and one
// whose first component belongs to the binary cache layout (nar/, locks/,
// a narinfo name, …: see layout.Reserved) are errors wrapping ErrBadName.
func NormalizePrefix(prefix string) (string, error) {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" || strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: prefix %q must be a relative key such as %s", ErrBadName, prefix, DefaultPrefix)
	}
	for _, c := range strings.Split(p, "/") {
		if err := CheckName("prefix component", c); err != nil {
			return "", fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	if first, _, _ := strings.Cut(p, "/"); layout.Reserved(first) {
		return "", fmt.Errorf("%w: prefix %q is part of the binary cache layout: in a bucket shared with a cache, gc or erase would delete the releases there; use another prefix such as %s", ErrBadName, prefix, DefaultPrefix)
	}
	return p + "/", nil
}

// BinaryKey returns the key of a binary: <prefix><version>/<target>/<name>.
func BinaryKey(prefix, version, target, name string) (string, error) {
	p, err := NormalizePrefix(prefix)
	if err != nil {
		return "", err
	}
	for _, c := range [][2]string{{"version", version}, {"target", target}, {"file name", name}} {
		if err := CheckName(c[0], c[1]); err != nil {
			return "", err
		}
	}
	return p + version + "/" + target + "/" + name, nil
}

// versionVars are the CI variables VersionFromEnv reads after GitHub's
// tag, in order: every tag variable before any commit variable, so that in
// an environment that sets several a tag always wins over a commit.
var versionVars = []string{"DRONE_TAG", "CI_COMMIT_TAG", "DRONE_COMMIT", "CI_COMMIT_SHA", "GITHUB_SHA"}

// VersionFromEnv returns the version a CI build publishes, read with
// getenv: the tag if the build is of a tag, else the commit. It knows Drone
// (DRONE_TAG, DRONE_COMMIT), Woodpecker and GitLab (CI_COMMIT_TAG,
// CI_COMMIT_SHA) and GitHub Actions (GITHUB_REF_NAME when GITHUB_REF_TYPE
// is "tag", else GITHUB_SHA). Every tag variable is checked before any
// commit variable; a variable that is empty or only white space counts as
// unset. It returns "" if none is set.
func VersionFromEnv(getenv func(string) string) string {
	set := func(k string) (string, bool) {
		v := getenv(k)
		return v, strings.TrimSpace(v) != ""
	}
	if getenv("GITHUB_REF_TYPE") == "tag" {
		if v, ok := set("GITHUB_REF_NAME"); ok {
			return v
		}
	}
	for _, k := range versionVars {
		if v, ok := set(k); ok {
			return v
		}
	}
	return ""
}

// Binary is one file to publish.
type Binary struct {
	// Path is the local file.
	Path string
	// Name is its name in the bucket; filepath.Base(Path) if empty.
	Name string
}

// Published is one published binary.
type Published struct {
	// Key is the binary's key.
	Key string `json:"key"`
	// ChecksumKey is the key of its .sha256 file.
	ChecksumKey string `json:"checksum_key"`
	// SHA256 is the binary's SHA-256 in lower-case hex.
	SHA256 string `json:"sha256"`
	// Size is the binary's length in bytes.
	Size int64 `json:"size"`
}

// PublishBinaries uploads files as the release version for target under
// prefix. Every name and file is checked before anything is written. Then,
// in three steps:
//
//  1. the .sha256 files of every key about to be written are deleted, so
//     that re-publishing a version never leaves an old checksum beside a
//     new binary;
//  2. each binary is streamed to the bucket, in order, while its SHA-256
//     is computed;
//  3. only once every binary is stored are their checksum files written.
//
// So a checksum, when present, always matches its binary, and a reader who
// sees one sees every binary of the call in full. A failure stops the
// call: the binaries already uploaded stay (each one whole, as S3 writes
// objects atomically), without checksums; running it again completes the
// release. The returned list holds the binaries whose checksum was written.
func PublishBinaries(ctx context.Context, b s3cache.Bucket, prefix, version, target string, files []Binary) ([]Published, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no file to publish", ErrBadName)
	}
	type job struct {
		Binary
		key  string
		size int64
	}
	jobs := make([]job, 0, len(files))
	seen := map[string]bool{}
	for _, f := range files {
		if f.Name == "" {
			f.Name = filepath.Base(f.Path)
		}
		key, err := BinaryKey(prefix, version, target, f.Name)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(f.Name, ChecksumSuffix) {
			return nil, fmt.Errorf("%w: file name %q ends with %s, which names checksums", ErrBadName, f.Name, ChecksumSuffix)
		}
		if seen[key] {
			return nil, fmt.Errorf("%w: two files named %q", ErrBadName, f.Name)
		}
		seen[key] = true
		fi, err := os.Stat(f.Path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("publishing %s: %w", f.Path, ErrNoFile)
			}
			return nil, fmt.Errorf("publishing %s: %w", f.Path, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("publishing %s: not a regular file: %w", f.Path, ErrNoFile)
		}
		jobs = append(jobs, job{Binary: f, key: key, size: fi.Size()})
	}
	stale := make([]string, len(jobs))
	for i, j := range jobs {
		stale[i] = j.key + ChecksumSuffix
	}
	if err := b.Delete(ctx, stale...); err != nil {
		return nil, fmt.Errorf("deleting the previous checksums of %s: %w", jobs[0].key, err)
	}
	uploaded := make([]Published, 0, len(jobs))
	for _, j := range jobs {
		p, err := uploadBinary(ctx, b, j.Path, j.Name, j.key, j.size)
		if err != nil {
			return nil, err
		}
		uploaded = append(uploaded, p)
	}
	out := make([]Published, 0, len(jobs))
	for i, p := range uploaded {
		line := p.SHA256 + "  " + jobs[i].Name + "\n"
		opts := s3cache.PutOptions{ContentType: ChecksumContentType, CacheControl: BinaryCacheControl}
		if err := b.Put(ctx, p.ChecksumKey, strings.NewReader(line), int64(len(line)), opts); err != nil {
			return out, fmt.Errorf("uploading checksum %s: %w", p.ChecksumKey, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ChecksumContentType is the media type of .sha256 files.
const ChecksumContentType = "text/plain; charset=utf-8"

// uploadBinary streams file to key and returns it with its SHA-256.
func uploadBinary(ctx context.Context, b s3cache.Bucket, file, name, key string, size int64) (Published, error) {
	f, err := os.Open(file)
	if err != nil {
		return Published{}, fmt.Errorf("publishing %s: %w", file, err)
	}
	defer f.Close()
	h := sha256.New()
	opts := s3cache.PutOptions{ContentType: BinaryContentType(name), CacheControl: BinaryCacheControl}
	if err := b.Put(ctx, key, io.TeeReader(f, h), size, opts); err != nil {
		return Published{}, fmt.Errorf("uploading %s to %s: %w", file, key, err)
	}
	return Published{Key: key, ChecksumKey: key + ChecksumSuffix, SHA256: hex.EncodeToString(h.Sum(nil)), Size: size}, nil
}

// BinaryContentType is the media type a release file is stored with: by
// its extension when it has a known one (.tar.gz, .zip, .txt…), else
// application/octet-stream (a static executable has none).
func BinaryContentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return "application/gzip"
	case strings.HasSuffix(name, ChecksumSuffix):
		return ChecksumContentType
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
