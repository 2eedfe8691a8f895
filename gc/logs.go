package gc

// Build logs and realisations: objects that belong to store paths without
// being part of their closure. A log, log/<drv base name>, belongs to the
// narinfos that name that derivation as their Deriver (and to the
// derivation's own narinfo, if the cache has the .drv); a realisation,
// realisations/<drv hash>!<output>.doi, to the narinfo of its outPath.
// Each is reachable when one of those narinfos is live, and survives
// (is not deleted this run) when one of them survives; otherwise it is
// condemned and deleted after the grace like a NAR.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// logDrv returns the derivation base name a log key names, and whether
// key is one gc collects: log/<hash>-<name>.drv. Other keys under log/
// are left alone.
func logDrv(key string) (string, bool) {
	drv, ok := strings.CutPrefix(key, layout.LogDir)
	if !ok || !strings.HasSuffix(drv, ".drv") || storepath.CheckBase(drv) != nil {
		return "", false
	}
	return drv, true
}

// isRealisation reports whether key is one gc collects:
// realisations/<id>.doi, the id being <drv hash>!<output name>.
func isRealisation(key string) bool {
	id, ok := strings.CutPrefix(key, layout.RealisationsDir)
	if !ok {
		return false
	}
	id, ok = strings.CutSuffix(id, ".doi")
	drvHash, output, ok2 := strings.Cut(id, "!")
	return ok && ok2 && drvHash != "" && output != "" && !strings.Contains(id, "/")
}

// realisation is the part of a realisation's JSON (Nix's
// Realisation::toJSON) gc reads.
type realisation struct {
	OutPath string `json:"outPath"`
}

// readBelongings learns what gc needs to tell the live logs and
// realisations from the dead, for those old enough to be collected (the
// young are kept anyway): the Deriver of the narinfos that may have built
// a log's derivation, and each realisation's outPath. A realisation that
// cannot be read or parsed is a problem (fail closed).
func (r *run) readBelongings(ctx context.Context) error {
	r.outPaths = map[string]string{}
	var logNames []string
	var reals []string
	for key, o := range r.objects {
		if r.young(o) {
			continue
		}
		if drv, ok := logDrv(key); ok {
			logNames = append(logNames, strings.TrimSuffix(storepath.Name(drv), ".drv"))
		} else if isRealisation(key) {
			reals = append(reals, key)
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Jobs)
	for _, h := range r.deriversToRead(logNames) {
		g.Go(func() error {
			ni, err := r.readNarInfo(gctx, layout.NarInfoKey(h))
			if ni == nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			r.rep.NarInfoGets++
			r.infos[h].Deriver = ni.Deriver
			delete(r.deriverUnknown, h)
			return nil
		})
	}
	for _, key := range reals {
		g.Go(func() error {
			data, err := r.get(gctx, key)
			if errors.Is(err, s3cache.ErrNotFound) {
				return nil // gone since the listing
			}
			if err != nil {
				return err
			}
			out, err := parseRealisation(data)
			if err != nil {
				r.problem("parsing %s: %v; fix or delete it", key, err)
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			r.outPaths[key] = out
			return nil
		})
	}
	return g.Wait()
}

// parseRealisation returns the hash part of a realisation's outPath (a
// base name, as Nix writes it, or a full store path).
func parseRealisation(data []byte) (string, error) {
	var re realisation
	if err := json.Unmarshal(data, &re); err != nil {
		return "", err
	}
	if err := storepath.CheckBase(storepath.Base(re.OutPath)); err != nil {
		return "", fmt.Errorf("outPath: %w", err)
	}
	return storepath.HashPart(re.OutPath), nil
}

// deriversToRead returns the narinfos whose Deriver is unknown (known
// from an entry of an older manifest, which records none) that may name
// one of the derivations logNames as their Deriver: Nix names a
// derivation's outputs <drv name> (out) and <drv name>-<output>, so only
// the narinfos of such a name are read. The narinfos read with a GET,
// and those known from a manifest that records derivers, already have
// their Deriver.
func (r *run) deriversToRead(logNames []string) []string {
	if len(logNames) == 0 {
		return nil
	}
	names := map[string]bool{}
	for _, n := range logNames {
		names[n] = true
	}
	var out []string
	for h, ni := range r.infos {
		if !r.deriverUnknown[h] {
			continue
		}
		name := storepath.Name(ni.StorePath)
		for i := len(name); i > 0; i = strings.LastIndexByte(name[:i], '-') {
			if names[name[:i]] {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// belongsTo returns the narinfo hash parts a log or realisation key
// belongs to (see the file's comment), and whether key is one.
func (r *run) belongsTo(key string, byDrv map[string][]string) ([]string, bool) {
	if drv, ok := logDrv(key); ok {
		// The derivation's own narinfo too, when the cache has the .drv
		// (push --include-outputs): nix log reads log/<drv> for it.
		return append(slices.Clip(byDrv[drv]), storepath.HashPart(drv)), true
	}
	if isRealisation(key) {
		if h, ok := r.outPaths[key]; ok {
			return []string{h}, true
		}
		return nil, true
	}
	return nil, false
}

// byDeriver maps each derivation base name to the narinfos naming it.
func (r *run) byDeriver() map[string][]string {
	out := map[string][]string{}
	for h, ni := range r.infos {
		if ni.Deriver != "" {
			out[ni.Deriver] = append(out[ni.Deriver], h)
		}
	}
	return out
}
