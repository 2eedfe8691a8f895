// Package stats measures a binary cache bucket from its listing: objects
// and bytes by kind, store paths, compression, root closure sizes, NARs
// nothing accounts for, unfinished uploads, and what gc could reclaim,
// with a growth history kept in the bucket (stats/history.jsonl) and an
// HTML page with a chart of it.
//
// Requests: one LIST of the bucket (a request per 1000 keys), one LIST of
// multipart uploads, and one GET per root manifest — never a GET per
// narinfo or NAR. What needs a narinfo's body is taken from the root
// manifests instead (package gc/roots): NarSize, and which NAR belongs to
// which narinfo. nixbucket keys NARs by NarHash (nar/<nix32 NarHash>.nar.*),
// which a manifest records for every path, so a NAR can be matched to a
// manifest entry without a GET; NARs written by other tools (nix copy keys
// them by FileHash) match only if a manifest names their key. Hence
// "unaccounted NARs" are those no manifest explains: orphans left by killed
// pushes, NARs of narinfos pushed without --root, or foreign NARs; telling
// them apart needs a GET per narinfo (nixbucket verify does that).
// Likewise the compression ratio covers the paths whose NarSize and NAR
// object are known from manifests, and "reclaimable" is gc's estimate
// with every manifest kept: old narinfos outside all manifest closures,
// and old NARs and listings no manifest path accounts for (gc, which
// reads every narinfo, may keep more: references of young narinfos).
package stats

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/gc/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

// Kinds of objects.
const (
	KindNarInfo = "narinfo"
	KindNAR     = "nar"
	KindListing = "listing"
	KindLog     = "log"
	KindRoot    = "root"
	KindOther   = "other"
)

// Kinds lists the kinds in display order.
var Kinds = []string{KindNarInfo, KindNAR, KindListing, KindLog, KindRoot, KindOther}

var (
	narinfoRE = regexp.MustCompile(`^([0-9a-df-np-sv-z]{32})\.narinfo$`)
	listingRE = regexp.MustCompile(`^([0-9a-df-np-sv-z]{32})\.ls$`)
)

// KindOf returns the kind of a key.
func KindOf(key string) string {
	switch {
	case narinfoRE.MatchString(key):
		return KindNarInfo
	case strings.HasPrefix(key, "nar/"):
		return KindNAR
	case listingRE.MatchString(key):
		return KindListing
	case strings.HasPrefix(key, "log/"):
		return KindLog
	case strings.HasPrefix(key, roots.Prefix):
		return KindRoot
	}
	return KindOther
}

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
	// StoredBytes is the size of the closure's NAR objects found.
	StoredBytes int64 `json:"storedBytes"`
	// Missing counts closure paths whose narinfo is not in the bucket.
	Missing int `json:"missing"`
}

// Report is what Collect measured; its JSON form is what `stats --json`
// prints.
type Report struct {
	// Time is when the bucket was measured.
	Time time.Time `json:"time"`
	// Total counts every object.
	Total Count `json:"total"`
	// ByKind counts the objects of each kind (Kinds).
	ByKind map[string]Count `json:"byKind"`
	// Paths is the number of store paths (narinfos).
	Paths int `json:"storePaths"`
	// Roots describes each root, by name.
	Roots []RootStats `json:"roots"`
	// KnownPaths is the number of narinfos that manifests describe and
	// whose NAR object was found; KnownNarSize is their NarSize and
	// KnownStored the size of their NAR objects.
	KnownPaths   int    `json:"knownPaths"`
	KnownNarSize uint64 `json:"knownNarSize"`
	KnownStored  int64  `json:"knownStoredBytes"`
	// Ratio is KnownStored / KnownNarSize (0 if unknown).
	Ratio float64 `json:"compressionRatio"`
	// Unaccounted are the NARs no manifest path explains.
	Unaccounted Count `json:"unaccountedNars"`
	// MissingNARs counts manifest paths whose narinfo exists but whose NAR
	// was not found by their recorded key or NarHash.
	MissingNARs int `json:"missingNars"`
	// Uploads counts unfinished multipart uploads; -1 if the bucket has none to list.
	Uploads int `json:"unfinishedUploads"`
	// Reclaimable is what gc could delete, estimated (see the package doc).
	Reclaimable Count `json:"reclaimable"`
	// Lists and Gets count the requests Collect made (a LIST request
	// returns up to 1000 keys; Lists counts listings, not pages).
	Lists int `json:"lists"`
	Gets  int `json:"gets"`
	// Notes explain what the figures cannot know.
	Notes []string `json:"notes"`
}

// Options tune Collect.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Grace is gc's grace for the reclaimable estimate; 0 means gc.DefaultGrace.
	Grace time.Duration
	// Jobs bounds the manifest GETs in flight; 0 means 16.
	Jobs int
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Collect measures b (see the package documentation).
func Collect(ctx context.Context, b s3cache.Bucket, opts Options) (*Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Grace <= 0 {
		opts.Grace = gc.DefaultGrace
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	now := opts.Now()
	r := &Report{Time: now.UTC(), ByKind: map[string]Count{}, Roots: []RootStats{}, Notes: []string{}}
	objects := map[string]s3cache.ObjectInfo{}
	narsByHash := map[string]string{} // nix32 part of nar/<hash>.nar* → key
	var index roots.Index
	var badRoots []string
	r.Lists++
	err := b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		objects[o.Key] = o
		r.Total.add(o.Size)
		k := KindOf(o.Key)
		c := r.ByKind[k]
		c.add(o.Size)
		r.ByKind[k] = c
		switch k {
		case KindNarInfo:
			r.Paths++
		case KindNAR:
			name := strings.TrimPrefix(o.Key, "nar/")
			if i := strings.Index(name, ".nar"); i > 0 {
				narsByHash[name[:i]] = o.Key
			}
		case KindRoot:
			if err := index.Add(o); err != nil {
				badRoots = append(badRoots, o.Key)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the cache: %w", err)
	}
	index.Sort()
	for _, k := range Kinds {
		if _, ok := r.ByKind[k]; !ok {
			r.ByKind[k] = Count{}
		}
	}
	if len(badRoots) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d keys under roots/ are not manifests (gc refuses to run): %s", len(badRoots), strings.Join(badRoots, ", ")))
	}

	// Read every manifest.
	var refs []roots.Ref
	for _, root := range index.Roots {
		refs = append(refs, root.Manifests...)
	}
	manifests := make([]*roots.Manifest, len(refs))
	var mu sync.Mutex
	var unreadable []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Jobs)
	for i, ref := range refs {
		g.Go(func() error {
			m, err := roots.Read(gctx, b, ref.Key)
			mu.Lock()
			defer mu.Unlock()
			r.Gets++
			if err != nil {
				unreadable = append(unreadable, err.Error())
				return nil
			}
			manifests[i] = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(unreadable) > 0 {
		slices.Sort(unreadable)
		r.Notes = append(r.Notes, fmt.Sprintf("%d root manifests are unreadable (gc refuses to run): %s", len(unreadable), strings.Join(unreadable, "; ")))
	}

	// Account for narinfos and NARs with the manifests.
	type known struct {
		narSize uint64
		nar     string
	}
	paths := map[string]known{} // narinfo key → what a manifest says
	accounted := map[string]bool{}
	narOf := func(e roots.Entry) string {
		if e.NAR != "" {
			if _, ok := objects[e.NAR]; ok {
				return e.NAR
			}
		}
		return narsByHash[strings.TrimPrefix(e.NarHash, "sha256:")]
	}
	for _, m := range manifests {
		if m == nil {
			continue
		}
		for _, e := range m.Paths {
			k := paths[e.NarInfo]
			k.narSize = e.NarSize
			if n := narOf(e); n != "" {
				k.nar = n
			}
			paths[e.NarInfo] = k
		}
	}
	for key, k := range paths {
		if _, ok := objects[key]; !ok {
			continue
		}
		if k.nar == "" {
			r.MissingNARs++
			continue
		}
		accounted[k.nar] = true
		r.KnownPaths++
		r.KnownNarSize += k.narSize
		r.KnownStored += objects[k.nar].Size
	}
	if r.KnownNarSize > 0 {
		r.Ratio = float64(r.KnownStored) / float64(r.KnownNarSize)
	}
	young := func(o s3cache.ObjectInfo) bool { return now.Sub(o.LastModified) < opts.Grace }
	for key, o := range objects {
		switch KindOf(key) {
		case KindNAR:
			if !accounted[key] {
				r.Unaccounted.add(o.Size)
				if !young(o) {
					r.Reclaimable.add(o.Size)
				}
			}
		case KindNarInfo:
			if _, ok := paths[key]; !ok && !young(o) {
				r.Reclaimable.add(o.Size)
			}
		case KindListing:
			if _, ok := paths[key[:32]+".narinfo"]; !ok && !young(o) {
				r.Reclaimable.add(o.Size)
			}
		}
	}
	for _, root := range index.Roots {
		rs := RootStats{Name: root.Name, Pinned: root.Pinned, Manifests: len(root.Manifests)}
		if len(root.Manifests) > 0 {
			rs.Newest = root.Manifests[0].Time
		}
		if m := newest(manifests, refs, root); m != nil {
			rs.Paths = len(m.Paths)
			rs.NarSize = m.NarSize()
			for _, e := range m.Paths {
				if _, ok := objects[e.NarInfo]; !ok {
					rs.Missing++
				}
				if n := narOf(e); n != "" {
					rs.StoredBytes += objects[n].Size
				}
			}
		}
		r.Roots = append(r.Roots, rs)
	}

	if mp, ok := b.(s3cache.Multiparter); ok {
		r.Lists++
		err := mp.ListMultipartUploads(ctx, "", func(s3cache.Upload) error { r.Uploads++; return nil })
		if err != nil {
			return nil, fmt.Errorf("listing multipart uploads: %w", err)
		}
		r.Notes = append(r.Notes, "unfinished uploads are listed by prefix; MinIO lists them only by exact key, so there they show as 0")
	} else {
		r.Uploads = -1
	}
	if len(index.Roots) == 0 && r.Paths > 0 {
		r.Notes = append(r.Notes, "no root manifests: NarSize, compression and NAR accounting need them (push --root NAME); every old object counts as reclaimable, though gc refuses to run without roots")
	}
	return r, nil
}

// newest returns the parsed newest manifest of root.
func newest(ms []*roots.Manifest, refs []roots.Ref, root *roots.Root) *roots.Manifest {
	if len(root.Manifests) == 0 {
		return nil
	}
	for i, ref := range refs {
		if ref.Key == root.Manifests[0].Key {
			return ms[i]
		}
	}
	return nil
}
