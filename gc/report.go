package gc

import (
	"slices"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// Action operations.
const (
	OpExpire  = "expire"  // a root manifest past retention is deleted
	OpCondemn = "condemn" // an unreachable object is recorded, kept for now
	OpDelete  = "delete"  // a condemned object is deleted
	OpAbort   = "abort"   // an unfinished multipart upload is aborted
)

// Action is one thing gc does (or would do, in a dry run).
type Action struct {
	// Op is one of OpExpire, OpCondemn, OpDelete, OpAbort.
	Op string `json:"op"`
	// Key is the object's (or upload's) key.
	Key string `json:"key"`
	// Size is the object's size in bytes (0 for uploads).
	Size int64 `json:"size"`
	// Reason says why.
	Reason string `json:"reason"`
}

// Report is what Run did; its JSON form is what `gc --json` prints.
type Report struct {
	// DryRun reports that nothing was changed.
	DryRun bool `json:"dryRun"`
	// Objects and Bytes are the bucket's size when listed.
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// Roots is the number of root names; Manifests of manifests, Kept of
	// which were kept.
	Roots     int `json:"roots"`
	Manifests int `json:"manifests"`
	Kept      int `json:"kept"`
	// NarInfos is the number of narinfos; Live of which are reachable.
	NarInfos int `json:"narinfos"`
	Live     int `json:"live"`
	// NarInfoGets is the number of narinfos read with a GET; the others
	// were known from kept manifests (their ETag matched).
	NarInfoGets int `json:"narinfoGets"`
	// Young is the number of narinfos kept only for being younger than the grace.
	Young int `json:"young"`
	// Condemned is the number of objects condemned now or still waiting.
	Condemned int `json:"condemned"`
	// Deleted and FreedBytes count the objects deleted (manifests included).
	Deleted    int   `json:"deleted"`
	FreedBytes int64 `json:"freedBytes"`
	// Logs, Listings and Realisations count the build logs, .ls listings
	// and realisations among Deleted.
	Logs         int `json:"logs"`
	Listings     int `json:"listings"`
	Realisations int `json:"realisations"`
	// Aborted is the number of multipart uploads aborted.
	Aborted int `json:"aborted"`
	// Mismatches counts manifest entries whose references differ from
	// their narinfo's (both are followed).
	Mismatches int `json:"mismatches"`
	// Actions lists every change, in the order made.
	Actions []Action `json:"actions"`
}

// report fills the report's actions without doing them.
func (r *run) report(p *planned) {
	for _, b := range p.batches {
		r.done(b)
	}
	r.condemnActions(p.condemned)
	for _, u := range p.uploads {
		r.abortAction(u)
	}
}

// done records deleted actions.
func (r *run) done(as []Action) {
	for _, a := range as {
		r.rep.Actions = append(r.rep.Actions, a)
		r.rep.Deleted++
		r.rep.FreedBytes += a.Size
		switch layout.KindOf(a.Key) {
		case layout.KindLog:
			r.rep.Logs++
		case layout.KindListing:
			r.rep.Listings++
		case layout.KindRealisation:
			r.rep.Realisations++
		}
	}
}

// condemnActions records the condemned objects.
func (r *run) condemnActions(condemned map[string]time.Time) {
	keys := make([]string, 0, len(condemned))
	for k := range condemned {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.rep.Actions = append(r.rep.Actions, Action{Op: OpCondemn, Key: k, Size: r.objects[k].Size,
			Reason: "unreachable; deletable from " + condemned[k].Add(r.opts.Grace).Format(time.RFC3339)})
	}
	r.rep.Condemned = len(condemned)
}

// abortAction records an aborted upload.
func (r *run) abortAction(u s3cache.Upload) {
	r.rep.Aborted++
	r.rep.Actions = append(r.rep.Actions, Action{Op: OpAbort, Key: u.Key,
		Reason: "unfinished multipart upload " + u.UploadID + " started " + u.Initiated.Format(time.RFC3339)})
}
