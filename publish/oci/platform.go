package oci

import (
	"errors"
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrBadPlatform is returned (wrapped) by ParsePlatform.
var ErrBadPlatform = errors.New("invalid platform")

// ErrBadFileSpec is returned (wrapped) by ParseFileSpec.
var ErrBadFileSpec = errors.New("invalid file argument")

var knownOS = map[string]bool{
	"aix": true, "android": true, "darwin": true, "dragonfly": true, "freebsd": true, "illumos": true,
	"ios": true, "js": true, "linux": true, "netbsd": true, "openbsd": true, "plan9": true,
	"solaris": true, "wasip1": true, "windows": true,
}

var knownArch = map[string]bool{
	"386": true, "amd64": true, "arm": true, "arm64": true, "loong64": true, "mips": true,
	"mipsle": true, "mips64": true, "mips64le": true, "ppc64": true, "ppc64le": true,
	"riscv64": true, "s390x": true, "wasm": true,
}

// ParsePlatform parses OS/ARCH[/VARIANT] (linux/amd64, linux/arm/v6) with
// Go's GOOS and GOARCH names; a variant is "v" and a version number
// (v6, v8, v8.2).
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, fmt.Errorf("%w %q: want OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm/v6", ErrBadPlatform, s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if !knownOS[p.OS] {
		return v1.Platform{}, fmt.Errorf("%w %q: unknown OS %q (want a GOOS name such as linux)", ErrBadPlatform, s, p.OS)
	}
	if !knownArch[p.Architecture] {
		return v1.Platform{}, fmt.Errorf("%w %q: unknown architecture %q (want a GOARCH name such as amd64, 386, arm64, arm)", ErrBadPlatform, s, p.Architecture)
	}
	if len(parts) == 3 {
		if !validVariant(parts[2]) {
			return v1.Platform{}, fmt.Errorf("%w %q: bad variant %q (want v6, v7, v8…)", ErrBadPlatform, s, parts[2])
		}
		p.Variant = parts[2]
	}
	return p, nil
}

func validVariant(v string) bool {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return false
	}
	major, minor, dot := strings.Cut(rest, ".")
	digits := func(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
	return digits(major) && (!dot || digits(minor))
}

// FormatPlatform renders p as OS/ARCH[/VARIANT].
func FormatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// File is a local file to put in an image.
type File struct {
	// Src is the local path (symbolic links are followed).
	Src string
	// Dest is the absolute path in the image.
	Dest string
}

// ParseFileSpec parses FILE[:DEST]. DEST must be absolute; one ending in
// "/" is a directory that receives the file under its own name; without
// DEST the file goes to /<its name>, as the seed's "COPY result/bin/garage /".
func ParseFileSpec(s string) (File, error) {
	src, dest := s, ""
	if i := strings.LastIndex(s, ":"); i >= 0 && strings.HasPrefix(s[i+1:], "/") {
		src, dest = s[:i], s[i+1:]
	}
	if src == "" {
		return File{}, fmt.Errorf("%w %q: empty file name", ErrBadFileSpec, s)
	}
	base := path.Base(strings.TrimRight(src, "/"))
	if base == "." || base == "/" || base == ".." {
		return File{}, fmt.Errorf("%w %q: not a file name", ErrBadFileSpec, s)
	}
	switch {
	case dest == "":
		dest = "/" + base
	case strings.HasSuffix(dest, "/"):
		dest = path.Join(dest, base)
	default:
		dest = path.Clean(dest)
	}
	if dest == "/" || strings.Contains(dest, "/../") || strings.HasSuffix(dest, "/..") {
		return File{}, fmt.Errorf("%w %q: bad destination %q", ErrBadFileSpec, s, dest)
	}
	return File{Src: src, Dest: dest}, nil
}
