// Package stats measures a binary cache bucket: objects and bytes by kind,
// store paths, compression, root closure sizes, NARs no narinfo refers to,
// narinfos whose NAR is missing, unfinished uploads, and what gc would
// reclaim, with a growth history kept in the bucket (stats/history.jsonl)
// and an HTML page with a chart of it.
//
// The figures come from gc's own dry run (gc.Inspect), so "reclaimable" is
// exactly what gc's planner decides, and every figure is exact. Requests:
// one LIST of the bucket (a request per 1000 keys), one LIST of multipart
// uploads, a HEAD for the server's clock, a GET of nix-cache-info and of
// each root manifest, and a GET of each narinfo that no manifest vouches
// for. A manifest vouches for a narinfo when its entry records the MD5 of
// the narinfo's text and the listed ETag is that MD5: then the entry's
// NAR key, NarSize and references are the narinfo's own. Every nixbucket
// push with --root records that for its whole closure, so a cache pushed
// with roots needs no GET per narinfo; narinfos pushed without a root, by
// other tools, or rewritten since are read. When some narinfo refers to
// a path without a narinfo, the upstream records (upstream/…) are read
// too, to count the references left to upstream (push --skip-signed-by).
package stats

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
)

// Kinds of objects stats tells apart, layout's kinds by name; the others
// count as KindOther. The values appear in the JSON report.
const (
	KindNarInfo  = string(layout.KindNarInfo)
	KindNAR      = string(layout.KindNAR)
	KindListing  = string(layout.KindListing)
	KindLog      = string(layout.KindLog)
	KindRoot     = string(layout.KindRoot)
	KindUpstream = string(layout.KindUpstream)
	KindOther    = string(layout.KindOther)
)

// Kinds lists the kinds in display order.
var Kinds = []string{KindNarInfo, KindNAR, KindListing, KindLog, KindRoot, KindUpstream, KindOther}

// KindOf returns the kind of a key: its layout.Kind if one of Kinds, else
// KindOther.
func KindOf(key string) string {
	switch k := layout.KindOf(key); k {
	case layout.KindNarInfo, layout.KindNAR, layout.KindListing, layout.KindLog, layout.KindRoot, layout.KindUpstream:
		return string(k)
	}
	return KindOther
}

// NoteMinIOUploads is the note of a report whose unfinished uploads were
// listed: a caller that knows the server is not MinIO may drop it.
const NoteMinIOUploads = "unfinished uploads are listed by prefix; MinIO lists them only by exact key, so there they show as 0"

// Count is a number of objects and their bytes.
type Count struct {
	// Objects is the number of objects.
	Objects int `json:"objects"`
	// Bytes is their total size.
	Bytes int64 `json:"bytes"`
}

func (c *Count) add(size int64) { c.Objects++; c.Bytes += size }

// RootStats describes one root's newest manifest.
type RootStats struct {
	// Name is the root's name.
	Name string `json:"name"`
	// Pinned reports whether the root is pinned.
	Pinned bool `json:"pinned"`
	// Manifests is the number of its manifests.
	Manifests int `json:"manifests"`
	// Newest is the time of its newest manifest.
	Newest time.Time `json:"newest"`
	// Paths and NarSize are the newest manifest's closure.
	Paths   int    `json:"paths"`
	NarSize uint64 `json:"narSize"`
	// StoredBytes is the size of the closure's NAR objects (each counted
	// once), as its narinfos name them.
	StoredBytes int64 `json:"storedBytes"`
	// Missing counts closure paths whose narinfo is not in the bucket,
	// but for those left upstream.
	Missing int `json:"missing"`
	// Upstream counts closure paths the push left to an upstream cache
	// (push --skip-signed-by).
	Upstream int `json:"upstream"`
}

// Report is what Collect measured; its JSON form is what `stats --json`
// prints.
type Report struct {
	// Time is when the bucket was measured (the server's clock).
	Time time.Time `json:"time"`
	// Total counts every object.
	Total Count `json:"total"`
	// ByKind counts the objects of each kind (Kinds).
	ByKind map[string]Count `json:"byKind"`
	// Paths is the number of store paths (narinfos).
	Paths int `json:"storePaths"`
	// Roots describes each root, by name.
	Roots []RootStats `json:"roots"`
	// KnownPaths is the number of narinfos whose NAR object is in the
	// bucket; KnownNarSize is their NarSize and KnownStored the size of
	// their NAR objects.
	KnownPaths   int    `json:"knownPaths"`
	KnownNarSize uint64 `json:"knownNarSize"`
	KnownStored  int64  `json:"knownStoredBytes"`
	// Ratio is KnownStored / KnownNarSize (0 if unknown).
	Ratio float64 `json:"compressionRatio"`
	// Unaccounted are the NARs no narinfo refers to (left by killed
	// pushes, or by narinfos deleted since).
	Unaccounted Count `json:"unaccountedNars"`
	// MissingNARs counts the narinfos whose NAR is not in the bucket.
	MissingNARs int `json:"missingNars"`
	// UpstreamReferences counts the store paths narinfos refer to that
	// have no narinfo in the bucket and are recorded as left to upstream
	// (push --skip-signed-by: an upstream entry of a manifest, or an
	// upstream record), as verify counts them.
	UpstreamReferences int `json:"upstreamReferences"`
	// Uploads counts unfinished multipart uploads; -1 if the bucket has none to list.
	Uploads int `json:"unfinishedUploads"`
	// Reclaimable is what gc's planner (gc --dry-run with the same grace,
	// keeping every manifest) finds unreachable and older than the grace:
	// what its next runs would delete (condemned first, deleted a grace
	// later). Zero when gc would refuse to run (see Notes).
	Reclaimable Count `json:"reclaimable"`
	// ReclaimableNow is the part of Reclaimable that a gc run now would
	// delete: condemned at least a grace ago.
	ReclaimableNow Count `json:"reclaimableNow"`
	// GCRefuses reports that gc would delete nothing (it fails closed);
	// Notes say why.
	GCRefuses bool `json:"gcRefuses"`
	// Lists and Gets count the requests Collect made (a LIST request
	// returns up to 1000 keys; Lists counts listings, not pages);
	// NarInfoGets is the part of Gets that read narinfos no manifest
	// vouches for.
	Lists       int `json:"lists"`
	Gets        int `json:"gets"`
	NarInfoGets int `json:"narinfoGets"`
	// Notes explain what the figures cannot know.
	Notes []string `json:"notes"`
	// LastGC is when the last gc run that finished ended (the
	// LastModified of its record, gc.LastRunKey); zero, and left out of
	// the JSON, if none has since gc began recording its runs.
	LastGC time.Time `json:"lastGC,omitzero"`
}

// Options tune Collect.
type Options struct {
	// Now, if set, is the time to measure at instead of the server's
	// clock (tests).
	Now func() time.Time
	// Grace is gc's grace for the reclaimable figures, as gc.Options.Grace:
	// 0 means gc.DefaultGrace, negative means none.
	Grace time.Duration
	// Jobs bounds the GETs in flight; 0 means 16.
	Jobs int
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Collect measures b (see the package documentation).
func Collect(ctx context.Context, b s3cache.Bucket, opts Options) (*Report, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = 16
	}
	p, err := gc.Inspect(ctx, b, gc.Options{Grace: opts.Grace, Now: opts.Now, Jobs: opts.Jobs, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	r := &Report{Time: p.Now, ByKind: map[string]Count{}, Roots: []RootStats{}, Notes: []string{},
		Uploads: p.Uploads, Lists: 1, Gets: p.Gets, NarInfoGets: p.NarInfoGets}
	if p.Uploads >= 0 {
		r.Lists++
	}
	for _, k := range Kinds {
		r.ByKind[k] = Count{}
	}
	referenced := map[string]bool{}
	for key, o := range p.Objects {
		r.Total.add(o.Size)
		k := KindOf(key)
		c := r.ByKind[k]
		c.add(o.Size)
		r.ByKind[k] = c
		if k != KindNarInfo {
			continue
		}
		r.Paths++
		ni := p.NarInfos[key]
		if ni == nil {
			continue // unreadable (a note says so) or gone since the listing
		}
		nar, ok := p.Objects[ni.URL]
		if !ok {
			r.MissingNARs++
			continue
		}
		referenced[ni.URL] = true
		r.KnownPaths++
		r.KnownNarSize += ni.NarSize
		r.KnownStored += nar.Size
	}
	for key, o := range p.Objects {
		if KindOf(key) == KindNAR && !referenced[key] {
			r.Unaccounted.add(o.Size)
		}
	}
	if r.KnownNarSize > 0 {
		r.Ratio = float64(r.KnownStored) / float64(r.KnownNarSize)
	}
	if unknown := r.Paths - len(p.NarInfos); unknown > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d narinfos could not be read; their NARs count as unaccounted", unknown))
	}
	if len(p.Problems) > 0 {
		r.GCRefuses = true
		r.Notes = append(r.Notes, "gc would delete nothing: "+strings.Join(p.Problems, "; "))
	} else {
		for _, a := range p.Report.Actions {
			switch a.Op {
			case gc.OpDelete, gc.OpExpire:
				r.ReclaimableNow.add(a.Size)
				r.Reclaimable.add(a.Size)
			case gc.OpCondemn:
				r.Reclaimable.add(a.Size)
			}
		}
	}
	for _, root := range p.Roots.Roots {
		rs := RootStats{Name: root.Name, Pinned: root.Pinned, Manifests: len(root.Manifests)}
		if len(root.Manifests) > 0 {
			rs.Newest = root.Manifests[0].Time
			if m := p.Manifests[root.Manifests[0].Key]; m != nil {
				rs.Paths = len(m.Paths)
				rs.NarSize = m.NarSize()
				nars := map[string]bool{}
				for _, e := range m.Paths {
					if _, ok := p.Objects[e.NarInfo]; !ok {
						if e.Upstream {
							rs.Upstream++
						} else {
							rs.Missing++
						}
						continue
					}
					ni := p.NarInfos[e.NarInfo]
					if ni == nil {
						continue
					}
					if o, ok := p.Objects[ni.URL]; ok && !nars[ni.URL] {
						nars[ni.URL] = true
						rs.StoredBytes += o.Size
					}
				}
			}
		}
		r.Roots = append(r.Roots, rs)
	}
	if p.Uploads >= 0 {
		r.Notes = append(r.Notes, NoteMinIOUploads)
	}
	if o, ok := p.Objects[gc.LastRunKey]; ok {
		r.LastGC = o.LastModified.UTC()
	}
	if err := r.countUpstream(ctx, b, p, opts.Jobs); err != nil {
		return nil, err
	}
	return r, nil
}
