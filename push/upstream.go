package push

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// Leaving paths upstream (Options.SkipSignedBy): a path the cache lacks
// whose local signatures include one by a named key (cache.nixos.org-1)
// is not uploaded. An upstream cache that signs with that key serves it,
// and Nix, given both caches as substituters, fetches it from there. The
// push counts it as a satisfied reference: the narinfos that refer to it
// are written as if the cache had it. What refers to it is recorded, so
// that verify tells it from a missing reference and stats counts it: the
// push writes an upstream record (roots.UpstreamRecord) of the skipped
// paths its narinfos refer to, under the lock, before the first such
// narinfo, so that a push killed midway leaves no narinfo whose upstream
// reference is unrecorded; a push with a root also marks its entries
// upstream in the manifest (roots.Entry.Upstream).
//
// The local signature is what the store recorded when it substituted the
// path; the push does not ask the upstream cache whether it still has
// it: a path gone from upstream is found by `nix copy` or a substituting
// client, not here.

// upstreamSigners returns the names of skip that signed info locally, in
// the order of skip: the part of each signature before ':'.
func upstreamSigners(info *store.PathInfo, skip []string) []string {
	var out []string
	for _, name := range skip {
		for _, sig := range info.Signatures {
			if n, _, ok := strings.Cut(sig, ":"); ok && n == name {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// leftUpstream returns, by path, the signer names of the paths of order
// that are absent from present (by hash part) and signed locally by a key
// of skip: the paths the push leaves upstream.
func leftUpstream(g *closure.Graph, order []string, present map[string]bool, skip []string) map[string][]string {
	if len(skip) == 0 {
		return nil
	}
	out := map[string][]string{}
	for _, p := range order {
		if present[storepath.HashPart(p)] {
			continue
		}
		if names := upstreamSigners(g.Info(p), skip); len(names) > 0 {
			out[p] = names
		}
	}
	return out
}

// outsideUpstream returns the local store's info of r, a reference
// outside the graph that the cache lacks, when the push leaves it
// upstream (signed locally by a key of SkipSignedBy); else nil.
func (p *pusher) outsideUpstream(ctx context.Context, r string) (*store.PathInfo, error) {
	if p.opts.LocalStore == nil || len(p.opts.SkipSignedBy) == 0 {
		return nil, nil
	}
	info, err := p.opts.LocalStore.QueryPathInfo(ctx, r)
	if errors.Is(err, store.ErrNotValid) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the local store's info of %s: %w", r, err)
	}
	if len(upstreamSigners(info, p.opts.SkipSignedBy)) == 0 {
		return nil, nil
	}
	return info, nil
}

// addOutsideUpstream adds the references outside the graph left upstream
// (checkOutside) to the plan's upstream paths.
func (pl *plan) addOutsideUpstream(up map[string]*store.PathInfo, skip []string) {
	if len(up) == 0 {
		return
	}
	if pl.upstream == nil {
		pl.upstream = map[string][]string{}
	}
	pl.upstreamOutside = up
	for r, info := range up {
		pl.upstream[r] = upstreamSigners(info, skip)
		pl.upstreamBytes += info.NarSize
		pl.upstreamRefs = append(pl.upstreamRefs, r)
	}
	slices.Sort(pl.upstreamRefs)
}

// recordUpstream writes the upstream record of the plan (the skipped
// paths the written narinfos refer to), once, before the first narinfo
// that refers to one; it is called with the lock entered. A push with a
// root writes one too: its manifest comes only after the narinfos.
func (a *attempt) recordUpstream(ctx context.Context) error {
	a.upstreamOnce.Do(func() {
		pl := a.plan
		r := &roots.UpstreamRecord{Created: time.Now(), StoreDir: a.storeDir}
		for _, p := range pl.upstreamRefs {
			r.Paths = append(r.Paths, roots.UpstreamPath{Path: p, Signers: pl.upstream[p]})
		}
		key, err := roots.WriteUpstream(ctx, a.b, r)
		if err != nil {
			a.upstreamErr = fmt.Errorf("recording the paths left upstream: %w", err)
			return
		}
		a.upstreamKey = key
		a.log.Debug("recorded the paths left upstream", "key", key, "paths", len(r.Paths))
	})
	return a.upstreamErr
}

// needsUpstreamRecord reports whether m's narinfo must wait for the
// upstream record: m refers to a path left upstream.
func (a *attempt) needsUpstreamRecord(m string) bool {
	if len(a.plan.upstream) == 0 {
		return false
	}
	return slices.ContainsFunc(a.g.Info(m).References, func(r string) bool {
		_, ok := a.plan.upstream[r]
		return ok && r != m
	})
}
