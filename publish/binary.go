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
// empty, not "." or "..", with no slash and no control character. what
// names it in the error ("version", "target").
func CheckName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrBadName, what)
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
// prefix or one that starts with a slash or has empty components is an
// error.
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

// VersionFromEnv returns the version a CI build publishes, read with
// getenv: the tag if the build is of a tag, else the commit. It knows Drone
// (DRONE_TAG, DRONE_COMMIT), Woodpecker and GitLab (CI_COMMIT_TAG,
// CI_COMMIT_SHA) and GitHub Actions (GITHUB_REF_NAME when GITHUB_REF_TYPE
// is "tag", else GITHUB_SHA). It returns "" if none is set.
func VersionFromEnv(getenv func(string) string) string {
	if getenv("GITHUB_REF_TYPE") == "tag" && getenv("GITHUB_REF_NAME") != "" {
		return getenv("GITHUB_REF_NAME")
	}
	for _, k := range []string{"DRONE_TAG", "DRONE_COMMIT", "CI_COMMIT_TAG", "CI_COMMIT_SHA", "GITHUB_SHA"} {
		if v := getenv(k); v != "" {
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
// prefix. Every name and file is checked before anything is uploaded;
// then, for each file in order, the binary is streamed to the bucket while
// its SHA-256 is computed, and only once it is stored is its checksum file
// written, so a reader who sees a checksum sees the whole binary.
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
	out := make([]Published, 0, len(jobs))
	for _, j := range jobs {
		p, err := publishOne(ctx, b, j.Path, j.Name, j.key, j.size)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

func publishOne(ctx context.Context, b s3cache.Bucket, file, name, key string, size int64) (Published, error) {
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
	sum := hex.EncodeToString(h.Sum(nil))
	line := sum + "  " + name + "\n"
	ckey := key + ChecksumSuffix
	copts := s3cache.PutOptions{ContentType: "text/plain; charset=utf-8", CacheControl: BinaryCacheControl}
	if err := b.Put(ctx, ckey, strings.NewReader(line), int64(len(line)), copts); err != nil {
		return Published{}, fmt.Errorf("uploading checksum %s: %w", ckey, err)
	}
	return Published{Key: key, ChecksumKey: ckey, SHA256: sum, Size: size}, nil
}

// BinaryContentType is the media type a release file is stored with: by
// its extension when it has a known one (.tar.gz, .zip, .txt…), else
// application/octet-stream (a static executable has none).
func BinaryContentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return "application/gzip"
	case strings.HasSuffix(name, ChecksumSuffix):
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
