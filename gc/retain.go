package gc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

// retain applies the retention policy, reads the kept manifests (an
// unreadable one is a problem) and returns the expired ones as actions.
func (r *run) retain(ctx context.Context) ([]Action, error) {
	var expired []Action
	var kept []string
	keepAll := r.opts.KeepLast <= 0 && r.opts.KeepWithin <= 0
	for _, root := range r.index.Roots {
		r.rep.Roots++
		for i, m := range root.Manifests {
			r.rep.Manifests++
			age := r.now.Sub(m.Time)
			switch {
			case keepAll, root.Pinned, i < r.opts.KeepLast, r.opts.KeepWithin > 0 && age <= r.opts.KeepWithin:
				kept = append(kept, m.Key)
			default:
				expired = append(expired, Action{Op: OpExpire, Key: m.Key, Size: m.Size,
					Reason: fmt.Sprintf("root %s manifest #%d from %s is past retention (%s)", root.Name, i+1, m.Time.Format(time.RFC3339), r.policy())})
			}
		}
	}
	r.rep.Kept = len(kept)
	r.kept = kept
	r.manifests = make([]*roots.Manifest, len(kept))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Jobs)
	for i, key := range kept {
		g.Go(func() error {
			r.gets.Add(1)
			m, err := roots.Read(gctx, r.b, key)
			switch {
			case err == nil:
				r.manifests[i] = m
			case errors.Is(err, s3cache.ErrNotFound):
				r.problem("root manifest %s vanished while gc ran (roots rm beside gc?); run gc again", key)
			case errors.Is(err, roots.ErrInvalidManifest):
				r.problem("%v; fix or remove it (nixbucket roots rm)", err)
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return expired, nil
}

// policy describes the retention policy for reasons.
func (r *run) policy() string {
	var p []string
	if r.opts.KeepLast > 0 {
		p = append(p, fmt.Sprintf("keep-last %d", r.opts.KeepLast))
	}
	if r.opts.KeepWithin > 0 {
		p = append(p, "keep-within "+r.opts.KeepWithin.String())
	}
	return strings.Join(p, ", ")
}
