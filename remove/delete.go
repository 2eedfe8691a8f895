package remove

import (
	"context"
	"fmt"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
)

// batches are the delete requests, in order: the narinfos layer by layer
// (referrers first), each layer in DeleteObjects batches of at most
// gc.DeleteBatch keys, then the listings.
func (pl *plan) batches() [][]string {
	var out [][]string
	for _, layer := range pl.layers {
		keys := make([]string, len(layer))
		for i, h := range layer {
			keys[i] = layout.NarInfoKey(h)
		}
		out = append(out, chunks(keys)...)
	}
	return append(out, chunks(pl.listings)...)
}

// chunks splits keys into batches of at most gc.DeleteBatch.
func chunks(keys []string) [][]string {
	var out [][]string
	for len(keys) > 0 {
		n := min(len(keys), gc.DeleteBatch)
		out = append(out, keys[:n])
		keys = keys[n:]
	}
	return out
}

// delete deletes the batches in order, checking the lock (if held)
// before each, and counts them in rep.
func (pl *plan) delete(ctx context.Context, b s3cache.Bucket, l *lock.Lock, rep *Report) error {
	for _, batch := range pl.batches() {
		if err := checkLock(ctx, l, rep.Deleted); err != nil {
			return err
		}
		if err := b.Delete(ctx, batch...); err != nil {
			return fmt.Errorf("deleting %d objects (%d deleted so far): %w", len(batch), rep.Deleted, err)
		}
		rep.Deleted += len(batch)
	}
	return nil
}
