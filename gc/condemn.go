package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nixbucket/nixbucket/s3cache"
)

// Condemn records keys as condemned at now (the server's clock; whole
// seconds are kept), as a gc run records what it finds unreachable: the
// first gc run at least Grace later deletes each of them that is then
// still unreachable and unchanged since now, and a key it finds reachable
// again drops out of the records. So a writer that has made objects
// unreachable (package remove, for the NARs of the paths it removes)
// saves them a gc run; gc decides as ever whether they go.
func Condemn(ctx context.Context, b s3cache.Bucket, now time.Time, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	at := now.UTC().Truncate(time.Second)
	rec := map[string]time.Time{}
	for _, k := range keys {
		rec[k] = at
	}
	_, err := putRecord(ctx, b, now, rec)
	return err
}

// putRecord writes a condemnation record made at now and returns its key.
func putRecord(ctx context.Context, b s3cache.Bucket, now time.Time, keys map[string]time.Time) (string, error) {
	data, _ := json.MarshalIndent(condemnedRecord{Created: now, Keys: keys}, "", " ")
	key := CondemnedPrefix + now.UTC().Format("20060102T150405.000000000Z") + ".json"
	if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/json"}); err != nil {
		return "", fmt.Errorf("recording condemned objects: %w", err)
	}
	return key, nil
}
