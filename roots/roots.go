// Package roots keeps root manifests in a binary cache bucket: what a push
// was for, so that garbage collection knows what to keep.
//
// A push with --root NAME writes one manifest,
//
//	roots/NAME/<UTC time as 20060102T150405Z>-<random>.json
//
// a plain JSON document (readable with curl) listing the top-level paths
// and every path of the pushed closure with its narinfo key, NarHash,
// NarSize, references, NAR key and file size, and the MD5 of its narinfo's
// text (its ETag): for the paths the push uploaded, from what it wrote;
// for those the cache already had, from their narinfos, which the push
// reads (a GET each, in parallel with the uploads). A root is pinned when
// roots/NAME/pinned exists; gc keeps every manifest of a pinned root. The manifest's time is in its key, so retention
// decisions need a LIST only.
//
// Nix has no such notion in a binary cache; the closure recorded is what
// `nix-store -qR` gives (src/libstore/misc.cc computeFSClosure).
package roots

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// Prefix is the key prefix of root manifests and pins.
const Prefix = "roots/"

// PinName is the last key component of a root's pin marker.
const PinName = "pinned"

// TimeFormat is the layout of a manifest's time in its key (UTC).
const TimeFormat = "20060102T150405Z"

// Version is the manifest format version written.
const Version = 1

// ErrInvalidName is returned (wrapped) for a root name that cannot be a
// key component.
var ErrInvalidName = errors.New("invalid root name")

// ErrPinned is returned (wrapped) by Remove for a pinned root.
var ErrPinned = errors.New("root is pinned")

// ErrNoRoot is returned (wrapped) when a root name has no manifest.
var ErrNoRoot = errors.New("no such root")

// ErrInvalidManifest is returned (wrapped) by Read for a manifest that
// does not parse.
var ErrInvalidManifest = errors.New("invalid root manifest")

// invalidError marks a parse error as ErrInvalidManifest without changing
// its message.
type invalidError struct{ error }

func (e invalidError) Is(target error) bool { return target == ErrInvalidManifest }
func (e invalidError) Unwrap() error        { return e.error }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$`)

// CheckName returns an error wrapping ErrInvalidName unless name is 1–100
// letters, digits, '.', '_', '+' or '-', starting with a letter or digit.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("root name %q: use letters, digits, '.', '_', '+' and '-' (at most 100), starting with a letter or digit: %w", name, ErrInvalidName)
	}
	return nil
}

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
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding manifest: data after the JSON object")
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
		if h := storepath.HashPart(e.Path); e.NarInfo != h+".narinfo" {
			return nil, fmt.Errorf("manifest path %s has narinfo key %q, want %s.narinfo", e.Path, e.NarInfo, h)
		}
		for _, r := range e.References {
			if err := storepath.CheckBase(r); err != nil {
				return nil, fmt.Errorf("manifest path %s has an invalid reference: %w", e.Path, err)
			}
		}
	}
	for _, p := range m.TopLevel {
		if !strings.HasPrefix(p, m.StoreDir+"/") {
			return nil, fmt.Errorf("manifest top-level path %q is not in %s", p, m.StoreDir)
		}
	}
	return &m, nil
}

// Ref is a manifest key in the bucket, parsed.
type Ref struct {
	// Key is the object's key.
	Key string `json:"key"`
	// Name is the root's name.
	Name string `json:"name"`
	// Time is the manifest's time, from its key.
	Time time.Time `json:"time"`
	// Size is the object's size in bytes.
	Size int64 `json:"size"`
}

// Key returns the key of a manifest of root name recorded at t.
func Key(name string, t time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return Prefix + name + "/" + t.UTC().Format(TimeFormat) + "-" + hex.EncodeToString(b) + ".json"
}

// PinKey is the key of root name's pin marker.
func PinKey(name string) string { return Prefix + name + "/" + PinName }

// ParseKey parses a key under Prefix: a manifest (ref set), a pin marker
// (pinned true), or neither (an error: gc fails closed on what it cannot
// account for).
func ParseKey(key string) (ref Ref, pinned bool, err error) {
	rest, ok := strings.CutPrefix(key, Prefix)
	name, file, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || CheckName(name) != nil || strings.Contains(file, "/") {
		return Ref{}, false, fmt.Errorf("%s is not roots/NAME/…", key)
	}
	if file == PinName {
		return Ref{Key: key, Name: name}, true, nil
	}
	stamp, _, ok := strings.Cut(strings.TrimSuffix(file, ".json"), "-")
	if !ok || !strings.HasSuffix(file, ".json") {
		return Ref{}, false, fmt.Errorf("%s is not a root manifest key (roots/NAME/<time>-<id>.json)", key)
	}
	t, err := time.Parse(TimeFormat, stamp)
	if err != nil {
		return Ref{}, false, fmt.Errorf("%s is not a root manifest key: bad time %q", key, stamp)
	}
	return Ref{Key: key, Name: name, Time: t}, false, nil
}

// Root is one root name's state in the bucket.
type Root struct {
	// Name is the root's name.
	Name string `json:"name"`
	// Pinned reports whether the root is pinned.
	Pinned bool `json:"pinned"`
	// Manifests are its manifests, newest first.
	Manifests []Ref `json:"manifests"`
}

// Index is every root in a bucket, from one listing of roots/.
type Index struct {
	// Roots are sorted by name.
	Roots []*Root
}

// Get returns the root called name, or nil.
func (x *Index) Get(name string) *Root {
	for _, r := range x.Roots {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Add records a key found under Prefix; it returns ParseKey's error.
func (x *Index) Add(o s3cache.ObjectInfo) error {
	ref, pinned, err := ParseKey(o.Key)
	if err != nil {
		return err
	}
	ref.Size = o.Size
	r := x.Get(ref.Name)
	if r == nil {
		r = &Root{Name: ref.Name}
		x.Roots = append(x.Roots, r)
	}
	if pinned {
		r.Pinned = true
		return nil
	}
	r.Manifests = append(r.Manifests, ref)
	return nil
}

// Sort orders roots by name and each root's manifests newest first.
func (x *Index) Sort() {
	slices.SortFunc(x.Roots, func(a, b *Root) int { return strings.Compare(a.Name, b.Name) })
	for _, r := range x.Roots {
		slices.SortFunc(r.Manifests, func(a, b Ref) int {
			if c := b.Time.Compare(a.Time); c != 0 {
				return c
			}
			return strings.Compare(b.Key, a.Key)
		})
	}
}

// List lists roots/ in b. A key there that is neither a manifest nor a pin
// is an error.
func List(ctx context.Context, b s3cache.Bucket) (*Index, error) {
	x := &Index{}
	err := b.List(ctx, Prefix, x.Add)
	if err != nil {
		return nil, fmt.Errorf("listing roots: %w", err)
	}
	x.Sort()
	return x, nil
}

// Read GETs and parses the manifest at key; a manifest that does not
// parse is an error wrapping ErrInvalidManifest.
func Read(ctx context.Context, b s3cache.Bucket, key string) (*Manifest, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading root manifest %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading root manifest %s: %w", key, err)
	}
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

// Pin marks root name as pinned; it must have a manifest.
func Pin(ctx context.Context, b s3cache.Bucket, name string, now time.Time) error {
	if err := exists(ctx, b, name); err != nil {
		return err
	}
	data := mustJSON(map[string]any{"name": name, "pinned": now.UTC().Truncate(time.Second)})
	if err := b.Put(ctx, PinKey(name), bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("pinning root %s: %w", name, err)
	}
	return nil
}

// Unpin removes root name's pin, if any.
func Unpin(ctx context.Context, b s3cache.Bucket, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := b.Delete(ctx, PinKey(name)); err != nil {
		return fmt.Errorf("unpinning root %s: %w", name, err)
	}
	return nil
}

// Remove deletes every manifest of root name and returns how many objects
// it deleted; the paths become garbage for gc. A pinned root is refused
// (error wrapping ErrPinned): unpin it first.
func Remove(ctx context.Context, b s3cache.Bucket, name string) (int, error) {
	if err := CheckName(name); err != nil {
		return 0, err
	}
	var keys []string
	pinned := false
	err := b.List(ctx, Prefix+name+"/", func(o s3cache.ObjectInfo) error {
		keys = append(keys, o.Key)
		pinned = pinned || o.Key == PinKey(name)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("listing root %s: %w", name, err)
	}
	if pinned {
		return 0, fmt.Errorf("root %s: %w; unpin it first (nixbucket roots unpin %s)", name, ErrPinned, name)
	}
	if len(keys) == 0 {
		return 0, fmt.Errorf("root %s: %w", name, ErrNoRoot)
	}
	if err := b.Delete(ctx, keys...); err != nil {
		return 0, fmt.Errorf("removing root %s: %w", name, err)
	}
	return len(keys), nil
}

func exists(ctx context.Context, b s3cache.Bucket, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	found := false
	errStop := errors.New("stop")
	err := b.List(ctx, Prefix+name+"/", func(o s3cache.ObjectInfo) error {
		if _, pinned, err := ParseKey(o.Key); err == nil && !pinned {
			found = true
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("listing root %s: %w", name, err)
	}
	if !found {
		return fmt.Errorf("root %s has no manifest: %w", name, ErrNoRoot)
	}
	return nil
}
