package serve

// Upstream records through the server: `push --cache http://…
// --skip-signed-by NAME` writes an upstream record (roots.UpstreamRecord)
// before the first narinfo that refers to a path it left upstream, and
// then those narinfos, whose references the cache does not hold.
//
// The server stores a record once it parses (roots.ParseUpstream: store
// paths of the cache's store directory), never replacing one already
// there (the same bytes again, a client's retry, are accepted and left
// alone), and from then on counts a reference that a record in the bucket
// names as present when it checks a narinfo. It reads the records of the
// bucket when a reference is missing (they are few and small) and keeps
// them in memory: the ones it stored itself at once, those of other
// writers at the next listing, which a missing reference always starts
// before the narinfo is refused.
//
// What this grants a token holder: declaring any path "upstream", and so
// writing a narinfo that refers to a path the cache does not hold. Such a
// narinfo is what --skip-signed-by writes on purpose; verify reports its
// reference as "left to upstream" (an error with --require-complete), and
// a client substitutes the path from another cache or fails. It does not
// make any narinfo's own NAR missing (the NAR check is unchanged), nor
// change what is already stored (records are never replaced, narinfos
// still need a trusted signature).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// maxUpstreamRecord bounds an upstream record a pusher writes (about
// 150 bytes a path).
const maxUpstreamRecord = 16 << 20

// upstreamJobs bounds the records read at once.
const upstreamJobs = 8

// maxUpstreamID bounds the random part of an upstream record's key.
const maxUpstreamID = 32

// isUpstreamKey reports whether key is an upstream record's key as push
// writes it: upstream/<UTC time>-<hex id>.json.
func isUpstreamKey(key string) bool {
	if _, err := roots.ParseUpstreamKey(key); err != nil {
		return false
	}
	name := strings.TrimSuffix(strings.TrimPrefix(key, roots.UpstreamPrefix), ".json")
	_, id, _ := strings.Cut(name, "-")
	if id == "" || len(id) > maxUpstreamID {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// putUpstream stores an upstream record once it parses and names paths of
// the cache's store directory. A key already in the bucket is not
// replaced: the same bytes are accepted (a retried PUT), others refused.
func (rc *receiver) putUpstream(ctx context.Context, key string, body io.Reader) error {
	data, err := readSmall(body, key, maxUpstreamRecord)
	if err != nil {
		return err
	}
	r, err := roots.ParseUpstream(data)
	if err != nil {
		return refuse(http.StatusBadRequest, "%s: %v", key, err)
	}
	dir, err := rc.storeDir(ctx)
	if err != nil {
		return err
	}
	if r.StoreDir != dir {
		return refuse(http.StatusConflict, "%s: the cache is for store %s, not %s", key, dir, r.StoreDir)
	}
	unlock := rc.keys.lock(key)
	defer unlock()
	have, err := s3cache.ReadSmall(ctx, rc.b, key, maxUpstreamRecord)
	switch {
	case err == nil && bytes.Equal(have, data):
		rc.log.Debug("upstream record already stored: kept", "key", key)
		return nil
	case err == nil:
		return refuse(http.StatusConflict, "%s is already in the cache; upstream records are never replaced", key)
	case !errors.Is(err, s3cache.ErrNotFound):
		return err
	}
	if err := rc.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/json"}); err != nil {
		return err
	}
	rc.upstream.add(key, recordNames(r))
	rc.log.Info("upstream record stored", "key", key, "paths", len(r.Paths))
	return nil
}

// recordNames returns the base names of the paths of r.
func recordNames(r *roots.UpstreamRecord) []string {
	out := make([]string, len(r.Paths))
	for i, p := range r.Paths {
		out[i] = storepath.Base(p.Path)
	}
	return out
}

// upstreamRecords is what the server knows of the cache's upstream
// records: the base names of the paths each one leaves upstream.
type upstreamRecords struct {
	listMu sync.Mutex // one listing at a time

	mu    sync.Mutex
	byKey map[string][]string // record key → base names
	names map[string]int      // base name → how many records name it
}

// has reports whether a record known names the path of base name name.
func (u *upstreamRecords) has(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.names[name] > 0
}

// add records the base names of the record at key, once.
func (u *upstreamRecords) add(key string, names []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.byKey[key]; ok {
		return
	}
	if u.byKey == nil {
		u.byKey, u.names = map[string][]string{}, map[string]int{}
	}
	u.byKey[key] = names
	for _, n := range names {
		u.names[n]++
	}
}

// drop forgets the record at key.
func (u *upstreamRecords) drop(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range u.byKey[key] {
		if u.names[n]--; u.names[n] <= 0 {
			delete(u.names, n)
		}
	}
	delete(u.byKey, key)
}

// known returns the keys of the records known.
func (u *upstreamRecords) known() map[string]bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]bool, len(u.byKey))
	for k := range u.byKey {
		out[k] = true
	}
	return out
}

// refreshUpstream lists the bucket's upstream records, reads those not known yet
// and forgets those gone. A record that does not parse, or is for another
// store directory, names nothing (it is logged once).
func (rc *receiver) refreshUpstream(ctx context.Context) error {
	u := &rc.upstream
	u.listMu.Lock()
	defer u.listMu.Unlock()
	dir, err := rc.storeDir(ctx)
	if err != nil {
		return err
	}
	known := u.known()
	listed := map[string]bool{}
	var fresh []string
	err = rc.b.List(ctx, roots.UpstreamPrefix, func(o s3cache.ObjectInfo) error {
		listed[o.Key] = true
		if !known[o.Key] {
			fresh = append(fresh, o.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for k := range known {
		if !listed[k] {
			u.drop(k)
		}
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(upstreamJobs)
	for _, key := range fresh {
		eg.Go(func() error {
			r, err := roots.ReadUpstream(ectx, rc.b, key)
			switch {
			case errors.Is(err, s3cache.ErrNotFound):
				return nil
			case errors.Is(err, roots.ErrInvalidUpstream):
				rc.log.Warn("upstream record ignored", "key", key, "err", err)
				u.add(key, nil)
				return nil
			case err != nil:
				return err
			}
			if r.StoreDir != dir {
				rc.log.Warn("upstream record of another store ignored", "key", key, "storeDir", r.StoreDir)
				u.add(key, nil)
				return nil
			}
			u.add(key, recordNames(r))
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	rc.log.Debug("upstream records read", "records", len(listed), "new", len(fresh))
	return nil
}
