package oci

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrNoFile is returned (wrapped) when a file to put in the image is
// missing or is not a regular file.
var ErrNoFile = errors.New("file for the image not found")

// ErrDenied is returned (wrapped) when the registry refuses the
// credentials or the request (HTTP 401 or 403).
var ErrDenied = errors.New("registry denied access")

// ErrUnreachable is returned (wrapped) when the registry cannot be reached.
var ErrUnreachable = errors.New("registry unreachable")

// ErrUntrusted is returned (wrapped) when the registry's TLS certificate
// does not verify (self-signed, expired, for another name).
var ErrUntrusted = errors.New("registry TLS certificate not trusted")

// ErrNotFound is returned (wrapped) when a source image does not exist.
var ErrNotFound = errors.New("image not found")

// ErrBadRef is returned (wrapped) for a malformed image reference.
var ErrBadRef = errors.New("invalid image reference")

// ImageOptions describe a FROM-scratch image.
type ImageOptions struct {
	// Platform is the image's OS, architecture and variant.
	Platform v1.Platform
	// Entrypoint and Cmd are the image's ENTRYPOINT and CMD (exec form).
	Entrypoint, Cmd []string
	// Env holds KEY=VALUE pairs.
	Env []string
	// Files are put in the image, in one layer.
	Files []File
}

// BuildImage returns a FROM-scratch OCI image with opts.Files in one
// layer (owned by root, with their permission bits, parent directories
// created 0755, a fixed timestamp so that the same files give the same
// image) and opts' configuration. It checks the files but reads them only
// when the image is written.
func BuildImage(opts ImageOptions) (v1.Image, error) {
	if len(opts.Files) == 0 {
		return nil, fmt.Errorf("building image: %w: no file given", ErrNoFile)
	}
	seen := map[string]bool{}
	for _, f := range opts.Files {
		fi, err := os.Stat(f.Src)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("building image: %s: %w", f.Src, ErrNoFile)
			}
			return nil, fmt.Errorf("building image: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("building image: %s is not a regular file: %w", f.Src, ErrNoFile)
		}
		if seen[f.Dest] {
			return nil, fmt.Errorf("building image: %w: two files at %s", ErrBadFileSpec, f.Dest)
		}
		seen[f.Dest] = true
	}
	for _, e := range opts.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return nil, fmt.Errorf("building image: environment %q: want KEY=VALUE", e)
		}
	}
	files := append([]File(nil), opts.Files...)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, files)) }()
		return pr, nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("building image layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, fmt.Errorf("building image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("building image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = opts.Platform.OS, opts.Platform.Architecture, opts.Platform.Variant
	cf.Config.Entrypoint = opts.Entrypoint
	cf.Config.Cmd = opts.Cmd
	cf.Config.Env = opts.Env
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("building image config: %w", err)
	}
	return img, nil
}

// layerTime is the timestamp of every layer entry.
var layerTime = time.Unix(0, 0)

// writeTar writes the layer: parent directories, then the files.
func writeTar(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	var dirList []string
	for _, f := range files {
		for d := path.Dir(f.Dest); d != "/"; d = path.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				dirList = append(dirList, d)
			}
		}
	}
	sort.Strings(dirList) // parents sort before their children
	for _, d := range dirList {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: layerTime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing layer: %w", err)
		}
	}
	for _, f := range files {
		if err := addFile(tw, f); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing layer: %w", err)
	}
	return nil
}

func addFile(tw *tar.Writer, f File) error {
	r, err := os.Open(f.Src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.Src, err)
	}
	defer r.Close()
	fi, err := r.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.Src, err)
	}
	h := &tar.Header{
		Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Dest, "/"), Size: fi.Size(),
		Mode: int64(fi.Mode().Perm()), ModTime: layerTime, Format: tar.FormatPAX,
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing layer entry %s: %w", f.Dest, err)
	}
	if n, err := io.Copy(tw, r); err != nil {
		return fmt.Errorf("copying %s into the layer: %w", f.Src, err)
	} else if n != fi.Size() {
		return fmt.Errorf("copying %s into the layer: it changed size while read", f.Src)
	}
	return nil
}

// RemoteOptions say how to reach a registry.
type RemoteOptions struct {
	// Keychain gives the credentials; authn.DefaultKeychain if nil.
	Keychain authn.Keychain
	// Insecure allows plain HTTP to the registry and skips the
	// verification of its TLS certificate (a self-signed one, say);
	// loopback and private addresses use plain HTTP without it, but
	// their TLS certificates are verified.
	Insecure bool
	// Transport, if set, replaces the default HTTP transport (and then
	// Insecure does not change its TLS settings).
	Transport http.RoundTripper
}

// insecureTransport is go-containerregistry's default transport without
// TLS certificate verification, for RemoteOptions.Insecure only.
var insecureTransport = sync.OnceValue(func() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	// The user asked for it with --insecure: a registry with a
	// self-signed certificate.
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	return t
})

func (o RemoteOptions) ref(s string) (name.Reference, error) {
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(s, nopts...)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadRef, s, err)
	}
	return r, nil
}

func (o RemoteOptions) remote(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	switch {
	case o.Transport != nil:
		opts = append(opts, remote.WithTransport(o.Transport))
	case o.Insecure:
		opts = append(opts, remote.WithTransport(insecureTransport()))
	}
	return opts
}

// remoteErr wraps a registry error with ErrDenied or ErrUnreachable when it
// is one of those.
func remoteErr(op string, ref name.Reference, err error) error {
	var te *transport.Error
	var ne net.Error
	var oe *net.OpError
	var ce *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ce):
		return fmt.Errorf("%s %s: %w: %v", op, ref, ErrUntrusted, ce.Err)
	case errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%s %s: %w (HTTP %d): check DOCKER_AUTH or ~/.docker/config.json", op, ref, ErrDenied, te.StatusCode)
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s %s: %w in the registry", op, ref, ErrNotFound)
	case errors.As(err, &oe), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s %s: %w: %v", op, ref, ErrUnreachable, err)
	}
	return fmt.Errorf("%s %s: %w", op, ref, err)
}

// Push pushes img to ref (registry/repository:tag) and returns the
// manifest digest. The manifest is pushed after every blob, so a failed
// push leaves the tag as it was.
func Push(ctx context.Context, img v1.Image, ref string, o RemoteOptions) (v1.Hash, error) {
	r, err := o.ref(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(r, img, o.remote(ctx)...); err != nil {
		return v1.Hash{}, remoteErr("pushing", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", r, err)
	}
	return d, nil
}

// WriteLayout adds img to the OCI image layout in dir (created if
// missing), annotated with refName (org.opencontainers.image.ref.name) if
// it is not empty, and returns its digest.
func WriteLayout(dir string, img v1.Image, refName string) (v1.Hash, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		p, err = layout.Write(dir, empty.Index)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("creating OCI layout %s: %w", dir, err)
		}
	}
	var lopts []layout.Option
	if refName != "" {
		lopts = append(lopts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": refName}))
	}
	if err := p.AppendImage(img, lopts...); err != nil {
		return v1.Hash{}, fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return d, nil
}

// IndexEntry is one image of a pushed index.
type IndexEntry struct {
	// Source is the reference it was read from.
	Source string
	// Platform is the platform read from its configuration.
	Platform v1.Platform
	// Digest is its manifest digest.
	Digest v1.Hash
}

// PushIndex pushes to ref an image index over the images sources name,
// each listed with the platform of its configuration (as manifest-tool's
// from-spec, but without writing the platforms by hand). Every source must
// be a single image with a platform, and no two may share one. It returns
// the index digest and the entries in order.
func PushIndex(ctx context.Context, ref string, sources []string, o RemoteOptions) (v1.Hash, []IndexEntry, error) {
	if len(sources) == 0 {
		return v1.Hash{}, nil, fmt.Errorf("%w: no source image for the index", ErrBadRef)
	}
	dst, err := o.ref(ref)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var entries []IndexEntry
	seen := map[string]string{}
	for _, s := range sources {
		src, err := o.ref(s)
		if err != nil {
			return v1.Hash{}, nil, err
		}
		desc, err := remote.Get(src, o.remote(ctx)...)
		if err != nil {
			return v1.Hash{}, nil, remoteErr("reading", src, err)
		}
		if desc.MediaType.IsIndex() {
			return v1.Hash{}, nil, fmt.Errorf("reading %s: %w: it is an index, not a single-platform image", src, ErrBadRef)
		}
		img, err := desc.Image()
		if err != nil {
			return v1.Hash{}, nil, remoteErr("reading", src, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return v1.Hash{}, nil, remoteErr("reading the configuration of", src, err)
		}
		p := cf.Platform()
		if p == nil || p.OS == "" || p.Architecture == "" {
			return v1.Hash{}, nil, fmt.Errorf("reading %s: %w: its configuration names no platform", src, ErrBadPlatform)
		}
		ps := FormatPlatform(*p)
		if prev, ok := seen[ps]; ok {
			return v1.Hash{}, nil, fmt.Errorf("%w: %s and %s are both %s", ErrBadPlatform, prev, s, ps)
		}
		seen[ps] = s
		mt, err := img.MediaType()
		if err != nil {
			return v1.Hash{}, nil, remoteErr("reading", src, err)
		}
		if mt == types.DockerManifestSchema2 && len(entries) == 0 {
			idx = mutate.IndexMediaType(empty.Index, types.DockerManifestList)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{MediaType: mt, Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}},
		})
		entries = append(entries, IndexEntry{Source: s, Platform: *p, Digest: desc.Digest})
	}
	if err := remote.WriteIndex(dst, idx, o.remote(ctx)...); err != nil {
		return v1.Hash{}, nil, remoteErr("pushing index", dst, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, nil, fmt.Errorf("pushing index %s: %w", dst, err)
	}
	return d, entries, nil
}
