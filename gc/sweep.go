package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// CondemnedPrefix is the key prefix of the records of condemned objects.
const CondemnedPrefix = layout.GCDir + "condemned/"

// condemnedRecord is the JSON of gc/condemned/<time>.json.
type condemnedRecord struct {
	Created time.Time `json:"created"`
	// Keys maps each condemned key to when it was first condemned.
	Keys map[string]time.Time `json:"keys"`
}

// readCondemned reads the condemnation records (one that does not parse
// is a problem); it returns when each key was first condemned.
func (r *run) readCondemned(ctx context.Context) (map[string]time.Time, error) {
	since := map[string]time.Time{}
	for _, key := range r.records {
		data, err := r.get(ctx, key)
		if errors.Is(err, s3cache.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rec condemnedRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			r.problem("parsing %s: %v; delete it to restart the grace period", key, err)
			continue
		}
		for k, t := range rec.Keys {
			if s, ok := since[k]; !ok || t.Before(s) {
				since[k] = t
			}
		}
	}
	return since, nil
}

// sweep deletes batch by batch (checking the lock before each), records
// the condemned and aborts stale uploads.
func (r *run) sweep(ctx context.Context, p *planned) error {
	for _, b := range p.batches {
		if err := r.checkLock(ctx, "deleting"); err != nil {
			return err
		}
		keys := make([]string, len(b))
		for i, a := range b {
			keys[i] = a.Key
		}
		if err := r.b.Delete(ctx, keys...); err != nil {
			return fmt.Errorf("deleting %d objects: %w", len(keys), err)
		}
		r.done(b)
	}
	if err := r.recordCondemned(ctx, p.condemned); err != nil {
		return err
	}
	r.condemnActions(p.condemned)
	if mp, ok := r.b.(s3cache.Multiparter); ok && len(p.uploads) > 0 {
		if err := r.checkLock(ctx, "aborting uploads"); err != nil {
			return err
		}
		for _, u := range p.uploads {
			err := mp.AbortMultipartUpload(ctx, u.Key, u.UploadID)
			if err != nil && !errors.Is(err, s3cache.ErrNotFound) {
				return fmt.Errorf("aborting upload of %s: %w", u.Key, err)
			}
			r.abortAction(u)
		}
	}
	r.log.Debug("gc done", "deleted", r.rep.Deleted, "freed", r.rep.FreedBytes, "condemned", r.rep.Condemned)
	return nil
}

// recordCondemned writes one record of the condemned objects, then drops
// the old records, which it replaces.
func (r *run) recordCondemned(ctx context.Context, condemned map[string]time.Time) error {
	if len(condemned) > 0 {
		key, err := putRecord(ctx, r.b, r.now, condemned)
		if err != nil {
			return err
		}
		r.records = slices.DeleteFunc(r.records, func(k string) bool { return k == key })
	}
	if len(r.records) > 0 {
		if err := r.b.Delete(ctx, r.records...); err != nil {
			return fmt.Errorf("deleting old condemnation records: %w", err)
		}
	}
	return nil
}

// checkLock makes sure the exclusive lock is still held before what.
func (r *run) checkLock(ctx context.Context, what string) error {
	if r.lock == nil {
		return nil
	}
	if err := r.lock.Check(ctx); err != nil {
		return fmt.Errorf("stopping before %s (%d objects deleted so far): %w", what, r.rep.Deleted, err)
	}
	return nil
}
