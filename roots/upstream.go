package roots

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// UpstreamPrefix is the key prefix of upstream records, the cache
// layout's upstream/.
const UpstreamPrefix = layout.UpstreamDir

// UpstreamVersion is the upstream record format version written.
const UpstreamVersion = 1

// upstreamMax bounds the size of an upstream record read.
const upstreamMax = 64 << 20

// ErrInvalidUpstream is returned (wrapped) by ReadUpstream for a record
// that does not parse.
var ErrInvalidUpstream = errors.New("invalid upstream record")

// UpstreamRecord is what one push left to upstream caches
// (push --skip-signed-by): the skipped paths that the narinfos it wrote
// refer to. A push with --root records them in its manifest instead
// (Entry.Upstream). verify and stats read both to tell a reference left
// to upstream from a missing one.
type UpstreamRecord struct {
	// Version is the format version, 1.
	Version int `json:"version"`
	// Created is when the record was written (UTC, whole seconds).
	Created time.Time `json:"created"`
	// StoreDir is the store directory of the paths, e.g. /nix/store.
	StoreDir string `json:"storeDir"`
	// Paths are the paths left upstream, sorted by path.
	Paths []UpstreamPath `json:"paths"`
}

// UpstreamPath is one path of an upstream record.
type UpstreamPath struct {
	// Path is the full store path.
	Path string `json:"path"`
	// Signers are the names of the keys whose local signatures made the
	// push leave it upstream.
	Signers []string `json:"signers"`
}

// UpstreamKey returns a new key for an upstream record written at t:
// upstream/<UTC time as 20060102T150405Z>-<random>.json.
func UpstreamKey(t time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return UpstreamPrefix + t.UTC().Format(TimeFormat) + "-" + hex.EncodeToString(b) + ".json"
}

// ParseUpstreamKey returns the time in an upstream record's key, or an
// error for a key under UpstreamPrefix that is not one.
func ParseUpstreamKey(key string) (time.Time, error) {
	file, ok := strings.CutPrefix(key, UpstreamPrefix)
	stamp, _, ok2 := strings.Cut(strings.TrimSuffix(file, ".json"), "-")
	if !ok || !ok2 || !strings.HasSuffix(file, ".json") || strings.Contains(file, "/") {
		return time.Time{}, fmt.Errorf("%s is not an upstream record key (upstream/<time>-<id>.json)", key)
	}
	t, err := time.Parse(TimeFormat, stamp)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not an upstream record key: bad time %q", key, stamp)
	}
	return t, nil
}

// ParseUpstream decodes and checks an upstream record: known version, an
// absolute store directory, every path a store path in it.
func ParseUpstream(data []byte) (*UpstreamRecord, error) {
	var r UpstreamRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding upstream record: %w", err)
	}
	if r.Version != UpstreamVersion {
		return nil, fmt.Errorf("upstream record version %d, want %d", r.Version, UpstreamVersion)
	}
	if !strings.HasPrefix(r.StoreDir, "/") {
		return nil, fmt.Errorf("upstream record store directory %q is not absolute", r.StoreDir)
	}
	for _, p := range r.Paths {
		if err := storepath.Check(r.StoreDir, p.Path); err != nil {
			return nil, fmt.Errorf("upstream record path: %w", err)
		}
	}
	return &r, nil
}

// ReadUpstream GETs and parses the upstream record at key; one that does
// not parse is an error wrapping ErrInvalidUpstream.
func ReadUpstream(ctx context.Context, b s3cache.Bucket, key string) (*UpstreamRecord, error) {
	data, err := s3cache.ReadSmall(ctx, b, key, upstreamMax)
	if err != nil {
		return nil, fmt.Errorf("reading upstream record %s: %w", key, err)
	}
	r, err := ParseUpstream(data)
	if err != nil {
		return nil, fmt.Errorf("parsing upstream record %s: %w", key, errors.Join(ErrInvalidUpstream, err))
	}
	return r, nil
}

// WriteUpstream stores r under a new key for r.Created and returns the
// key.
func WriteUpstream(ctx context.Context, b s3cache.Bucket, r *UpstreamRecord) (string, error) {
	r.Version = UpstreamVersion
	r.Created = r.Created.UTC().Truncate(time.Second)
	data := mustJSON(r)
	if _, err := ParseUpstream(data); err != nil {
		return "", err
	}
	key := UpstreamKey(r.Created)
	if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/json"}); err != nil {
		return "", fmt.Errorf("writing upstream record %s: %w", key, err)
	}
	return key, nil
}

// UpstreamHashes reads the upstream records at keys, jobs at a time, and
// returns the hash parts of the paths they list. A record deleted since
// it was listed is skipped; one that does not parse is passed to invalid
// (which may return an error to stop) and skipped.
func UpstreamHashes(ctx context.Context, b s3cache.Bucket, keys []string, jobs int, invalid func(key string, err error) error) (map[string]bool, error) {
	var mu sync.Mutex
	out := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for _, key := range keys {
		g.Go(func() error {
			r, err := ReadUpstream(gctx, b, key)
			switch {
			case errors.Is(err, s3cache.ErrNotFound):
				return nil
			case errors.Is(err, ErrInvalidUpstream):
				return invalid(key, err)
			case err != nil:
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range r.Paths {
				out[storepath.HashPart(p.Path)] = true
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// UpstreamHashes returns the hash parts of the manifest's entries left
// upstream.
func (m *Manifest) UpstreamHashes() []string {
	var out []string
	for _, e := range m.Paths {
		if e.Upstream {
			out = append(out, storepath.HashPart(e.Path))
		}
	}
	return out
}
