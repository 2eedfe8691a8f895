package push

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
)

// upload carries out the plan's writes: NARs upload in the plan's NAR
// order, up to Jobs small ones and, beside them, bigJobs large ones at a
// time, each compressed at once but sent only once beforeNARs, if set,
// returns; a path's narinfo is written, up to MetaJobs at a time, as soon
// as the plan lets it: its NAR is uploaded and the narinfos of its
// references (within the plan) are written. Any failure stops new work;
// what was written stays consistent. It returns the compressed bytes
// uploaded.
func (a *attempt) upload(ctx context.Context) (uint64, error) {
	pl := a.plan
	var (
		mu        sync.Mutex
		waits     = maps.Clone(pl.waits) // what each narinfo still waits for
		infos     = make(map[string]*narinfo.NarInfo, len(pl.missing))
		fileBytes atomic.Uint64
	)
	eg, ctx := errgroup.WithContext(ctx)
	metaSlots := make(chan struct{}, a.metaJobs)
	var release func(m string)
	// commit writes m's narinfo, then releases its referrers.
	commit := func(m string) {
		eg.Go(func() error {
			select {
			case metaSlots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			defer func() { <-metaSlots }()
			mu.Lock()
			ni := infos[m]
			mu.Unlock()
			if err := a.enter(ctx, "writing "+layout.NarInfoKeyOf(m)); err != nil {
				return err
			}
			if a.needsUpstreamRecord(m) {
				if err := a.recordUpstream(ctx); err != nil {
					return err
				}
			}
			if err := a.writeNarInfo(ctx, ni); err != nil {
				return err
			}
			a.counters.Done.Add(1)
			for _, q := range pl.referrers[m] {
				release(q)
			}
			return nil
		})
	}
	// release counts one of m's waits as done, and commits m after the last.
	release = func(m string) {
		mu.Lock()
		waits[m]--
		ready := waits[m] == 0
		mu.Unlock()
		if ready {
			commit(m)
		}
	}

	// Large NARs and the others start from two queues with slots of their
	// own, so small paths never wait behind a large upload.
	var big, small []string
	for _, m := range pl.nars {
		if a.g.Info(m).NarSize > bigNar {
			big = append(big, m)
		} else {
			small = append(small, m)
		}
	}
	uploadAll := func(nars []string, slots chan struct{}) {
		eg.Go(func() error {
			for _, m := range nars {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				eg.Go(func() error {
					defer func() { <-slots }()
					ni, err := a.uploadNAR(ctx, a.g.Info(m), a.beforeNARs)
					if err != nil {
						return err
					}
					fileBytes.Add(ni.FileSize)
					mu.Lock()
					infos[m] = ni
					mu.Unlock()
					release(m)
					return nil
				})
			}
			return nil
		})
	}
	uploadAll(big, make(chan struct{}, bigJobs))
	uploadAll(small, make(chan struct{}, a.jobs))
	err := eg.Wait()
	a.written = infos
	return fileBytes.Load(), err
}
