package gc

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// planned is what a run will do, in order.
type planned struct {
	batches   [][]Action // deletions, each batch one DeleteObjects request
	condemned map[string]time.Time
	uploads   []s3cache.Upload
}

// collectable reports whether gc may ever delete key: narinfos, NARs, .ls
// listings, build logs (log/<drv>) and realisations
// (realisations/<id>.doi). Everything else (nix-cache-info, roots, locks,
// stats, other files, and other keys under log/ and realisations/) is
// left alone.
func collectable(key string) bool {
	switch layout.KindOf(key) {
	case layout.KindNarInfo, layout.KindListing, layout.KindNAR:
		return true
	case layout.KindLog:
		_, ok := logDrv(key)
		return ok
	case layout.KindRealisation:
		return isRealisation(key)
	}
	return false
}

// decide decides, for every unreachable collectable object, whether it is
// deleted now or condemned (kept for now), and returns the condemnation
// times to record. Condemnation times are whole seconds, rounded down: an
// object rewritten after its condemnation has a later LastModified even on
// servers that keep whole seconds only (AWS), so it is revived, not deleted.
func (r *run) decide(live map[string]bool, since map[string]time.Time) (del []Action, condemned map[string]time.Time) {
	// Survivors: live narinfos, plus any narinfo not deleted this run, and
	// everything they reach.
	deletable := func(key string) bool {
		o := r.objects[key]
		s, ok := since[key]
		return ok && r.now.Sub(s) >= r.opts.Grace && o.LastModified.Before(s) && !r.young(o)
	}
	x := r.newReach()
	for h := range r.infos {
		if live[h] || !deletable(layout.NarInfoKey(h)) {
			x.add(h)
		}
	}
	survive := x.close()
	keptNARs := map[string]bool{}
	liveNARs := map[string]bool{}
	for h, ni := range r.infos {
		if survive[h] {
			keptNARs[ni.URL] = true
		}
		if live[h] {
			liveNARs[ni.URL] = true
		}
	}
	byDrv := r.byDeriver()
	condemned = map[string]time.Time{}
	keys := make([]string, 0, len(r.objects))
	for k := range r.objects {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		o := r.objects[key]
		if !collectable(key) || r.young(o) {
			continue
		}
		var reachable, survives bool
		if h, ok := pathHash(key); ok {
			reachable, survives = live[h], survive[h]
		} else if owners, ok := r.belongsTo(key, byDrv); ok { // log/, realisations/
			for _, h := range owners {
				reachable = reachable || live[h]
				survives = survives || survive[h]
			}
		} else { // nar/
			reachable, survives = liveNARs[key], keptNARs[key]
		}
		if reachable {
			continue
		}
		if !survives && deletable(key) {
			del = append(del, Action{Op: OpDelete, Key: key, Size: o.Size,
				Reason: fmt.Sprintf("unreachable, condemned %s, unchanged since", since[key].Format(time.RFC3339))})
			continue
		}
		s, ok := since[key]
		if !ok || !o.LastModified.Before(s) {
			s = r.now.Truncate(time.Second) // new, or rewritten since condemned: the clock restarts
		}
		condemned[key] = s
	}
	return del, condemned
}

// pathHash returns the hash part of the store path a narinfo or listing
// key is for.
func pathHash(key string) (string, bool) {
	if h, ok := layout.NarInfoHash(key); ok {
		return h, true
	}
	return layout.ListingHash(key)
}

// DeleteBatch is the most keys one DeleteObjects request deletes (S3's
// limit).
const DeleteBatch = 1000

// batches orders the deletions so that Nix's closure invariant holds at
// every instant: expired manifests, then realisations (each points to a
// narinfo), then narinfos, referrers before their references (layers),
// then NARs, listings and logs; each batch is one DeleteObjects request.
func (r *run) batches(expired, del []Action) [][]Action {
	out := chunks(expired)
	var reals, infos, rest []Action
	for _, a := range del {
		switch layout.KindOf(a.Key) {
		case layout.KindNarInfo:
			infos = append(infos, a)
		case layout.KindRealisation:
			reals = append(reals, a)
		default:
			rest = append(rest, a)
		}
	}
	out = append(out, chunks(reals)...)
	for _, layer := range r.layers(infos) {
		out = append(out, chunks(layer)...)
	}
	return append(out, chunks(rest)...)
}

// chunks splits actions into batches of at most DeleteBatch.
func chunks(as []Action) [][]Action {
	var out [][]Action
	for len(as) > 0 {
		n := min(len(as), DeleteBatch)
		out = append(out, as[:n])
		as = as[n:]
	}
	return out
}

// layers splits narinfo deletions into batches; every referrer of a
// narinfo (among the deleted) is in an earlier batch.
func (r *run) layers(infos []Action) [][]Action {
	byHash := map[string]Action{}
	for _, a := range infos {
		byHash[narInfoHash(a.Key)] = a
	}
	referrers := map[string]int{} // deleted referrers not yet deleted
	for h := range byHash {
		for _, ref := range storepath.HashParts(r.infos[h].References) {
			if _, ok := byHash[ref]; ok && ref != h {
				referrers[ref]++
			}
		}
	}
	// Kahn's algorithm: a layer is every narinfo left that no narinfo left
	// refers to; the next one those whose last referrer this layer took.
	var out [][]Action
	var layer []Action
	for h, a := range byHash {
		if referrers[h] == 0 {
			layer = append(layer, a)
		}
	}
	for len(byHash) > 0 {
		if len(layer) == 0 { // a cycle cannot happen in Nix; delete the rest together
			for _, a := range byHash {
				layer = append(layer, a)
			}
		}
		slices.SortFunc(layer, func(a, b Action) int { return cmp.Compare(a.Key, b.Key) })
		for _, a := range layer {
			delete(byHash, narInfoHash(a.Key))
		}
		var next []Action
		for _, a := range layer {
			h := narInfoHash(a.Key)
			for _, ref := range storepath.HashParts(r.infos[h].References) {
				if ref == h {
					continue
				}
				if referrers[ref]--; referrers[ref] == 0 {
					if b, ok := byHash[ref]; ok {
						next = append(next, b)
					}
				}
			}
		}
		out = append(out, layer)
		layer = next
	}
	return out
}
