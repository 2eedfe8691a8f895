package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// LastRunKey is the key of the record every gc run that finished (not a
// dry run, not one that failed closed) leaves: its LastModified is when
// the last gc ended, by the server's clock, which stats reports from the
// listing without reading it. A new run replaces it.
const LastRunKey = layout.GCDir + "last-run.json"

// lastRun is the JSON of LastRunKey.
type lastRun struct {
	// Time is the time the run planned for (the server's clock).
	Time       time.Time `json:"time"`
	Deleted    int       `json:"deleted"`
	FreedBytes int64     `json:"freedBytes"`
	Condemned  int       `json:"condemned"`
	Aborted    int       `json:"aborted"`
}

// recordRun writes LastRunKey. It is a trace for monitoring only: a
// failure to write it is logged and the run still succeeds.
func (r *run) recordRun(ctx context.Context) {
	data, _ := json.MarshalIndent(lastRun{Time: r.now, Deleted: r.rep.Deleted, FreedBytes: r.rep.FreedBytes,
		Condemned: r.rep.Condemned, Aborted: r.rep.Aborted}, "", " ")
	if err := r.b.Put(ctx, LastRunKey, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/json"}); err != nil {
		r.log.Warn("recording the gc run", "key", LastRunKey, "err", err)
	}
}
