package gc

import (
	"slices"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/storepath"
)

// checkRooted makes it a problem to collect a cache that has narinfos
// older than the grace and no kept manifest: that would delete them all.
func (r *run) checkRooted() {
	read := 0
	for _, m := range r.manifests {
		if m != nil {
			read++
		}
	}
	old := 0
	for h := range r.infos {
		if !r.young(r.objects[layout.NarInfoKey(h)]) {
			old++
		}
	}
	if read == 0 && old > 0 {
		r.problem("the cache has %d narinfos older than the grace and no root to keep: gc would delete them all; push with --root NAME first, or use `nixbucket erase`", old)
	}
}

// mark returns the live narinfo hash parts: the closure of the kept
// manifests' paths and the young narinfos.
func (r *run) mark() map[string]bool {
	x := r.newReach()
	live, add := x.set, x.add
	for _, m := range r.manifests {
		if m == nil {
			continue
		}
		for _, e := range m.Paths {
			h := narInfoHash(e.NarInfo)
			add(h)
			for _, ref := range e.References {
				add(storepath.HashPart(ref))
			}
			if ni := r.infos[h]; ni != nil && !slices.Equal(storepath.HashParts(ni.References), storepath.HashParts(e.References)) {
				r.rep.Mismatches++
				r.log.Warn("manifest and narinfo references differ", "path", e.Path)
			}
		}
	}
	for hash := range r.infos {
		if o := r.objects[layout.NarInfoKey(hash)]; r.young(o) && !live[hash] {
			r.rep.Young++
			add(hash)
		}
	}
	x.close()
	r.rep.Live = len(live)
	return live
}

// reach is a set of narinfo hash parts being closed under references:
// add seeds it, close follows the references of every member.
type reach struct {
	r     *run
	set   map[string]bool
	queue []string
}

func (r *run) newReach() *reach { return &reach{r: r, set: map[string]bool{}} }

// add puts hash in the set if the cache has its narinfo.
func (x *reach) add(hash string) {
	if !x.set[hash] && x.r.infos[hash] != nil {
		x.set[hash] = true
		x.queue = append(x.queue, hash)
	}
}

// close adds everything the members refer to and returns the set.
func (x *reach) close() map[string]bool {
	for len(x.queue) > 0 {
		h := x.queue[len(x.queue)-1]
		x.queue = x.queue[:len(x.queue)-1]
		for _, ref := range x.r.infos[h].References {
			x.add(storepath.HashPart(ref))
		}
	}
	return x.set
}
