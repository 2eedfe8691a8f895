package oci_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nixbucket/nixbucket/publish/oci"
)

func TestParsePlatform(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want v1.Platform
		ok   bool
	}{
		{"linux/amd64", v1.Platform{OS: "linux", Architecture: "amd64"}, true},
		{"linux/386", v1.Platform{OS: "linux", Architecture: "386"}, true},
		{"linux/arm64", v1.Platform{OS: "linux", Architecture: "arm64"}, true},
		{"linux/arm/v6", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, true},
		{"linux/arm64/v8.2", v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8.2"}, true},
		{"amd64", v1.Platform{}, false},
		{"linux/", v1.Platform{}, false},
		{"linux/x86_64", v1.Platform{}, false}, // the Rust name, not Go's
		{"linux/i386", v1.Platform{}, false},
		{"Linux/amd64", v1.Platform{}, false},
		{"linux/arm/6", v1.Platform{}, false},
		{"linux/arm/v6/x", v1.Platform{}, false},
		{"", v1.Platform{}, false},
	} {
		got, err := oci.ParsePlatform(tc.in)
		if tc.ok != (err == nil) || (tc.ok && !got.Equals(tc.want)) {
			t.Errorf("ParsePlatform(%q) = %+v, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, oci.ErrBadPlatform) {
			t.Errorf("ParsePlatform(%q) error %v does not wrap ErrBadPlatform", tc.in, err)
		}
	}
}

func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm/v6", "linux/arm64/v8.2", "a/b/c/d", "linux//v6", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := oci.ParsePlatform(s)
		if err != nil {
			return
		}
		if oci.FormatPlatform(p) != s {
			t.Fatalf("ParsePlatform(%q) = %+v, formats back as %q", s, p, oci.FormatPlatform(p))
		}
	})
}

func TestParseFileSpec(t *testing.T) {
	for _, tc := range []struct {
		in        string
		src, dest string
		ok        bool
	}{
		{"result/bin/garage", "result/bin/garage", "/garage", true},
		{"result/bin/garage:/usr/bin/garage", "result/bin/garage", "/usr/bin/garage", true},
		{"result/bin/garage:/usr/bin/", "result/bin/garage", "/usr/bin/garage", true},
		{"a:b", "a:b", "/a:b", true}, // DEST must be absolute: the colon is part of the name
		{":/x", "", "", false},
		{"", "", "", false},
		{"x:/", "x", "/x", true},
		{"x:/a/../..", "", "", false},
		{"..", "", "", false},
	} {
		got, err := oci.ParseFileSpec(tc.in)
		if tc.ok != (err == nil) || (tc.ok && (got.Src != tc.src || got.Dest != tc.dest)) {
			t.Errorf("ParseFileSpec(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseFileSpec(f *testing.F) {
	for _, s := range []string{"a", "a:/b", "a:/b/", "a:b:/c", ":/", "x:/a/../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := oci.ParseFileSpec(s)
		if err != nil {
			return
		}
		if fs.Src == "" || !strings.HasPrefix(fs.Dest, "/") || fs.Dest == "/" || strings.Contains(fs.Dest+"/", "/../") {
			t.Fatalf("ParseFileSpec(%q) = %+v", s, fs)
		}
	})
}

// layerFiles returns the regular files of an image's filesystem.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = data
			if h.Mode&0o111 == 0 {
				t.Errorf("%s lost its execute bits: mode %o", h.Name, h.Mode)
			}
		}
	}
}

// TestPushInProcess builds images and an index against go-containerregistry's
// in-process registry and reads them back.
func TestPushInProcess(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	dir := t.TempDir()
	bin := filepath.Join(dir, "garage")
	data := make([]byte, 100_000)
	_, _ = rand.Read(data)
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	o := oci.RemoteOptions{Keychain: authn.NewMultiKeychain()}
	var sources []string
	for _, ps := range []string{"linux/amd64", "linux/386", "linux/arm64", "linux/arm/v6"} {
		p, err := oci.ParsePlatform(ps)
		if err != nil {
			t.Fatal(err)
		}
		img, err := oci.BuildImage(oci.ImageOptions{
			Platform: p, Cmd: []string{"/garage", "server"}, Env: []string{"RUST_LOG=garage=info"},
			Files: []oci.File{{Src: bin, Dest: "/garage"}, {Src: bin, Dest: "/usr/local/bin/garage"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ref := host + "/" + p.Architecture + p.Variant + "_garage:v1.0.0"
		d, err := oci.Push(ctx, img, ref, o)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, ref)
		got, err := remote.Image(mustRef(t, ref))
		if err != nil {
			t.Fatal(err)
		}
		if gd, _ := got.Digest(); gd != d {
			t.Errorf("%s: digest %s, pushed %s", ref, gd, d)
		}
		cf, err := got.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !cf.Platform().Equals(p) || !slices.Equal(cf.Config.Cmd, []string{"/garage", "server"}) || len(cf.Config.Entrypoint) != 0 ||
			!slices.Equal(cf.Config.Env, []string{"RUST_LOG=garage=info"}) {
			t.Errorf("%s: config %+v", ref, cf)
		}
		files := layerFiles(t, got)
		if len(files) != 2 || !bytes.Equal(files["garage"], data) || !bytes.Equal(files["usr/local/bin/garage"], data) {
			t.Errorf("%s: layer files %d, want the binary at /garage and /usr/local/bin/garage", ref, len(files))
		}
	}
	// The same files make the same image.
	img1, _ := oci.BuildImage(oci.ImageOptions{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Files: []oci.File{{Src: bin, Dest: "/garage"}}})
	img2, _ := oci.BuildImage(oci.ImageOptions{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Files: []oci.File{{Src: bin, Dest: "/garage"}}})
	d1, err1 := img1.Digest()
	d2, err2 := img2.Digest()
	if err1 != nil || err2 != nil || d1 != d2 {
		t.Errorf("image not reproducible: %s %s %v %v", d1, d2, err1, err2)
	}

	d, entries, err := oci.PushIndex(ctx, host+"/garage:v1.0.0", sources, o)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(mustRef(t, host+"/garage:v1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for i, m := range im.Manifests {
		plats = append(plats, oci.FormatPlatform(*m.Platform))
		if m.Digest != entries[i].Digest {
			t.Errorf("index entry %d digest %s, source %s", i, m.Digest, entries[i].Digest)
		}
	}
	if want := []string{"linux/amd64", "linux/386", "linux/arm64", "linux/arm/v6"}; !slices.Equal(plats, want) {
		t.Errorf("index platforms %q, want %q", plats, want)
	}
	if gd, _ := idx.Digest(); gd != d {
		t.Errorf("index digest %s, pushed %s", gd, d)
	}

	t.Run("duplicate platform", func(t *testing.T) {
		_, _, err := oci.PushIndex(ctx, host+"/garage:dup", []string{sources[0], sources[0]}, o)
		if !errors.Is(err, oci.ErrBadPlatform) {
			t.Errorf("error %v, want ErrBadPlatform", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := oci.BuildImage(oci.ImageOptions{Files: []oci.File{{Src: filepath.Join(dir, "nope"), Dest: "/x"}}})
		if !errors.Is(err, oci.ErrNoFile) {
			t.Errorf("error %v, want ErrNoFile", err)
		}
	})
	t.Run("OCI layout", func(t *testing.T) {
		ld := filepath.Join(t.TempDir(), "layout")
		d, err := oci.WriteLayout(ld, img1, "v1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		p, err := layout.FromPath(ld)
		if err != nil {
			t.Fatal(err)
		}
		img, err := p.Image(d)
		if err != nil {
			t.Fatal(err)
		}
		if files := layerFiles(t, img); !bytes.Equal(files["garage"], data) {
			t.Errorf("layout image lacks the binary")
		}
	})
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
