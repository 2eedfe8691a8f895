package gc

import (
	"context"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

// Plan is what a dry run found (Inspect): the figures and actions of its
// report and what they were computed from. Package stats reports on a
// bucket from it, so that its "reclaimable" is gc's own plan.
type Plan struct {
	// Report is the dry run's report.
	Report *Report
	// Problems say why Run would delete nothing (it fails closed); empty
	// when it would run. The report is then computed without what could
	// not be read.
	Problems []string
	// Now is the time the plan is for (the server's clock, or Options.Now).
	Now time.Time
	// Objects is the listing, by key (ETags only of narinfos).
	Objects map[string]s3cache.ObjectInfo
	// Roots are the root names and manifest keys listed.
	Roots roots.Index
	// Manifests are the kept manifests read, by key.
	Manifests map[string]*roots.Manifest
	// NarInfos is what is known of each narinfo, by key: StorePath, URL,
	// NarSize, FileSize, References and Deriver ("" also when known only
	// from older manifests and not read for a log), from a kept manifest entry whose
	// recorded MD5 is the listed ETag, else from the narinfo itself.
	NarInfos map[string]*narinfo.NarInfo
	// NarInfoGets is the number of narinfos read with a GET.
	NarInfoGets int
	// Gets is the number of GET requests made (manifests, narinfos,
	// nix-cache-info, condemnation records).
	Gets int
	// Uploads is the number of unfinished multipart uploads listed; -1
	// when the bucket has none to list.
	Uploads int
}

// Inspect plans as a dry run of Run with opts does, without a lock, and
// returns the plan even when Run would fail closed (Plan.Problems says
// why). It changes nothing.
func Inspect(ctx context.Context, b s3cache.Bucket, opts Options) (*Plan, error) {
	opts.DryRun, opts.Lock = true, nil
	r := newRun(b, opts)
	p, err := r.plan(ctx, true)
	if err != nil {
		return nil, err
	}
	r.report(p)
	out := &Plan{
		Report: r.rep, Problems: r.problems, Now: r.now, Objects: r.objects, Roots: r.index,
		Manifests: map[string]*roots.Manifest{}, NarInfos: make(map[string]*narinfo.NarInfo, len(r.infos)),
		NarInfoGets: r.rep.NarInfoGets, Gets: int(r.gets.Load()), Uploads: r.uploads,
	}
	for i, m := range r.manifests {
		if m != nil {
			out.Manifests[r.kept[i]] = m
		}
	}
	for h, ni := range r.infos {
		out.NarInfos[layout.NarInfoKey(h)] = ni
	}
	return out, nil
}
