package stats

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// countUpstream counts the references left to upstream
// (UpstreamReferences): the paths the narinfos refer to that have no
// narinfo, recorded as upstream by the manifests gc's plan read or by the
// upstream records, which it reads (a GET each, counted in Gets) only
// when some reference is missing.
func (r *Report) countUpstream(ctx context.Context, b s3cache.Bucket, p *gc.Plan, jobs int) error {
	missing := map[string]bool{}
	for _, ni := range p.NarInfos {
		for _, ref := range ni.References {
			h := storepath.HashPart(ref)
			if _, ok := p.Objects[layout.NarInfoKey(h)]; !ok {
				missing[h] = true
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	up := map[string]bool{}
	for _, m := range p.Manifests {
		if m == nil {
			continue
		}
		for _, h := range m.UpstreamHashes() {
			up[h] = true
		}
	}
	var records []string
	for key := range p.Objects {
		if strings.HasPrefix(key, roots.UpstreamPrefix) {
			if _, err := roots.ParseUpstreamKey(key); err == nil {
				records = append(records, key)
			}
		}
	}
	var mu sync.Mutex
	set, err := roots.UpstreamHashes(ctx, b, records, jobs, func(key string, err error) error {
		mu.Lock()
		defer mu.Unlock()
		r.Notes = append(r.Notes, fmt.Sprintf("upstream record %s ignored: %v", key, err))
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading upstream records: %w", err)
	}
	r.Gets += len(records)
	for h := range set {
		up[h] = true
	}
	for h := range missing {
		if up[h] {
			r.UpstreamReferences++
		}
	}
	return nil
}
