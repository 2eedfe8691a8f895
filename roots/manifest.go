package roots

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// Version is the manifest format version written.
const Version = 1

// ErrInvalidManifest is returned (wrapped) by Read for a manifest that
// does not parse.
var ErrInvalidManifest = errors.New("invalid root manifest")

// invalidError marks a parse error as ErrInvalidManifest without changing
// its message.
type invalidError struct{ error }

func (e invalidError) Is(target error) bool { return target == ErrInvalidManifest }
func (e invalidError) Unwrap() error        { return e.error }

// Manifest is one recorded root: what one push with --root NAME pushed.
type Manifest struct {
	// Version is the format version, 1.
	Version int `json:"version"`
	// Name is the root's name.
	Name string `json:"name"`
	// Created is when the manifest was recorded (UTC, whole seconds).
	Created time.Time `json:"created"`
	// StoreDir is the store directory of the paths, e.g. /nix/store.
	StoreDir string `json:"storeDir"`
	// TopLevel are the paths the push was asked for.
	TopLevel []string `json:"topLevel"`
	// Paths is the whole closure, sorted by path.
	Paths []Entry `json:"paths"`
	// Derivers marks a manifest whose entries record their narinfo's
	// Deriver (Entry.Deriver), "" then meaning the narinfo names none.
	// Absent (false) in manifests of older nixbucket versions, whose
	// entries' derivers are unknown: gc reads those narinfos to learn
	// which build logs they keep. A flag rather than a new Version, so
	// that older versions still read the manifests written now.
	Derivers bool `json:"derivers,omitempty"`
}

// Entry is one path of a manifest's closure.
type Entry struct {
	// Path is the full store path.
	Path string `json:"path"`
	// NarInfo is the key of its narinfo, <hash>.narinfo.
	NarInfo string `json:"narinfo"`
	// NarHash is its NAR hash, "sha256:<nix32>".
	NarHash string `json:"narHash"`
	// NarSize is its NAR size in bytes.
	NarSize uint64 `json:"narSize"`
	// NAR is the key of its NAR (the narinfo's URL); "" in manifests of
	// older nixbucket versions for paths the push did not upload.
	NAR string `json:"nar,omitempty"`
	// FileSize is the size of the NAR object, when NAR is set.
	FileSize uint64 `json:"fileSize,omitempty"`
	// NarInfoMD5 is the hex MD5 of the narinfo's text (the S3 ETag of a
	// single-part PUT), when NAR is set. gc and stats trust the entry's
	// NAR, sizes and References instead of GETting the narinfo when the
	// listed ETag matches.
	NarInfoMD5 string `json:"narinfoMd5,omitempty"`
	// References are the base names of the paths it refers to.
	References []string `json:"references"`
	// Sigs are the narinfo's signatures, when NarInfoMD5 is set; absent
	// from manifests of older nixbucket versions. verify with trusted
	// keys checks them instead of GETting the narinfo when the listed
	// ETag matches.
	Sigs []string `json:"sigs,omitempty"`
	// Deriver is the narinfo's Deriver, the base name of the .drv that
	// built the path, when the manifest records derivers (Derivers) and
	// NarInfoMD5 is set; "" otherwise.
	Deriver string `json:"deriver,omitempty"`
	// Upstream marks a path the push left to an upstream cache (push
	// --skip-signed-by): its narinfo is not expected in this bucket, and
	// NAR, FileSize, NarInfoMD5 and Sigs are unset. Absent (false) in
	// manifests of older nixbucket versions, which have no such entries;
	// older versions reading a manifest with them see entries whose
	// narinfo is absent, which gc ignores.
	Upstream bool `json:"upstream,omitempty"`
}

// NarSize is the sum of the entries' NAR sizes.
func (m *Manifest) NarSize() uint64 {
	var n uint64
	for _, e := range m.Paths {
		n += e.NarSize
	}
	return n
}

// Parse decodes and checks a manifest: known version, a valid name, every
// entry a store path in StoreDir whose narinfo key matches its hash part.
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	// Unmarshal, unlike a Decoder, decodes data in place (no copy of a
	// manifest of a million paths) and refuses data after the object.
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("manifest version %d, want %d", m.Version, Version)
	}
	if err := CheckName(m.Name); err != nil {
		return nil, err
	}
	if m.StoreDir == "" || !strings.HasPrefix(m.StoreDir, "/") {
		return nil, fmt.Errorf("manifest store directory %q is not absolute", m.StoreDir)
	}
	if m.Created.IsZero() {
		return nil, errors.New("manifest has no creation time")
	}
	if len(m.Paths) == 0 {
		return nil, errors.New("manifest lists no paths")
	}
	for _, e := range m.Paths {
		if err := storepath.Check(m.StoreDir, e.Path); err != nil {
			return nil, fmt.Errorf("manifest path: %w", err)
		}
		if want := layout.NarInfoKeyOf(e.Path); e.NarInfo != want {
			return nil, fmt.Errorf("manifest path %s has narinfo key %q, want %s", e.Path, e.NarInfo, want)
		}
		for _, r := range e.References {
			if err := storepath.CheckBase(r); err != nil {
				return nil, fmt.Errorf("manifest path %s has an invalid reference: %w", e.Path, err)
			}
		}
		if e.Deriver != "" {
			if !m.Derivers {
				return nil, fmt.Errorf("manifest path %s has a deriver but the manifest does not record derivers", e.Path)
			}
			if e.NarInfoMD5 == "" {
				return nil, fmt.Errorf("manifest path %s has a deriver but no narinfo MD5", e.Path)
			}
			if err := storepath.CheckBase(e.Deriver); err != nil {
				return nil, fmt.Errorf("manifest path %s has an invalid deriver: %w", e.Path, err)
			}
		}
		if e.Upstream && (e.NAR != "" || e.NarInfoMD5 != "") {
			return nil, fmt.Errorf("manifest path %s is left upstream but names a NAR or narinfo of this cache", e.Path)
		}
	}
	for _, p := range m.TopLevel {
		if !strings.HasPrefix(p, m.StoreDir+"/") {
			return nil, fmt.Errorf("manifest top-level path %q is not in %s", p, m.StoreDir)
		}
	}
	return &m, nil
}

// Read GETs and parses the manifest at key; a manifest that does not
// parse is an error wrapping ErrInvalidManifest. It holds the manifest's
// text once, in a buffer of its size when the bucket tells it with the
// GET (s3cache.InfoGetter).
func Read(ctx context.Context, b s3cache.Bucket, key string) (*Manifest, error) {
	var rc io.ReadCloser
	var size int64
	var err error
	if g, ok := b.(s3cache.InfoGetter); ok {
		var info s3cache.ObjectInfo
		rc, info, err = g.GetWithInfo(ctx, key)
		size = info.Size
	} else {
		rc, err = b.Get(ctx, key)
	}
	if err != nil {
		return nil, fmt.Errorf("reading root manifest %s: %w", key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if size > 0 && size < 1<<31 {
		buf.Grow(int(size) + bytes.MinRead) // ReadFrom wants MinRead spare to see EOF
	}
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, fmt.Errorf("reading root manifest %s: %w", key, err)
	}
	data := buf.Bytes()
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parsing root manifest %s: %w", key, invalidError{err})
	}
	return m, nil
}

// Write stores m under a new key for m.Name and m.Created and returns the
// key.
func Write(ctx context.Context, b s3cache.Bucket, m *Manifest) (string, error) {
	if err := CheckName(m.Name); err != nil {
		return "", err
	}
	m.Version = Version
	m.Created = m.Created.UTC().Truncate(time.Second)
	if _, err := Parse(mustJSON(m)); err != nil {
		return "", fmt.Errorf("recording root %s: %w", m.Name, err)
	}
	data := mustJSON(m)
	key := Key(m.Name, m.Created)
	if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/json"}); err != nil {
		return "", fmt.Errorf("writing root manifest %s: %w", key, err)
	}
	return key, nil
}

func mustJSON(v any) []byte {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		panic(err) // plain structs always marshal
	}
	return append(data, '\n')
}
