package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// list lists the bucket once: every object, the root manifests and pins
// (a key under roots/ that is neither is a problem), the condemnation
// records; then it reads the store directory from nix-cache-info.
func (r *run) list(ctx context.Context) error {
	r.objects = map[string]s3cache.ObjectInfo{}
	var bad []string
	var newest time.Time
	err := r.b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		if _, ok := layout.NarInfoHash(o.Key); !ok {
			o.ETag = "" // only a narinfo's is used: not kept for a million NARs
		}
		r.objects[o.Key] = o
		if o.LastModified.After(newest) {
			newest = o.LastModified
		}
		r.rep.Objects++
		r.rep.Bytes += o.Size
		switch {
		case strings.HasPrefix(o.Key, layout.RootsDir):
			if err := r.index.Add(o); err != nil {
				bad = append(bad, err.Error())
			}
		case strings.HasPrefix(o.Key, CondemnedPrefix):
			r.records = append(r.records, o.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the cache: %w", err)
	}
	if len(bad) > 0 {
		r.problem("unknown keys under %s: %s; move or delete them", layout.RootsDir, strings.Join(bad, "; "))
	}
	// The server's Date header has whole seconds; an object it stamped
	// later is a closer lower bound of its time, by up to a second (more
	// would be another clock: a node of the server that runs ahead, whose
	// stamps must not shorten the grace of the others).
	if r.opts.Now == nil && newest.After(r.now) {
		if limit := r.now.Add(time.Second); newest.After(limit) {
			newest = limit
		}
		r.now = newest.UTC()
	}
	r.index.Sort()
	return r.readStoreDir(ctx)
}

// readStoreDir sets storeDir: nix-cache-info's StoreDir, else the default.
func (r *run) readStoreDir(ctx context.Context) error {
	r.storeDir = storepath.DefaultDir()
	if _, ok := r.objects[layout.CacheInfoKey]; !ok {
		return nil
	}
	text, err := r.get(ctx, layout.CacheInfoKey)
	if err != nil {
		return err
	}
	if dir := narinfo.CacheInfoValue(string(text), "StoreDir"); dir != "" {
		r.storeDir = dir
	}
	return nil
}

// readNarInfos learns every narinfo's NAR URL and references: from a
// kept manifest entry when the listed ETag is the MD5 the push recorded
// (the very text it wrote), else with a GET. Its Deriver too, from an
// entry of a manifest that records derivers; one known from older
// manifests only is marked deriverUnknown (readBelongings). A narinfo
// that does not parse is a problem.
func (r *run) readNarInfos(ctx context.Context) error {
	r.infos = map[string]*narinfo.NarInfo{}
	r.deriverUnknown = map[string]bool{}
	for _, m := range r.manifests {
		if m == nil {
			continue
		}
		for _, e := range m.Paths {
			o, ok := r.objects[e.NarInfo]
			if !ok || e.NarInfoMD5 == "" || e.NAR == "" || !strings.EqualFold(o.ETag, e.NarInfoMD5) {
				continue
			}
			h := narInfoHash(e.NarInfo)
			if r.infos[h] != nil && !r.deriverUnknown[h] {
				continue // known with its Deriver from another manifest
			}
			ni := &narinfo.NarInfo{StorePath: e.Path, URL: e.NAR, NarSize: e.NarSize, FileSize: e.FileSize, References: e.References}
			if m.Derivers {
				ni.Deriver = e.Deriver
				delete(r.deriverUnknown, h)
			} else {
				r.deriverUnknown[h] = true
			}
			r.infos[h] = ni
		}
	}
	var keys []string
	for k := range r.objects {
		if h, ok := layout.NarInfoHash(k); ok {
			r.rep.NarInfos++
			if r.infos[h] == nil {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	r.rep.NarInfoGets = len(keys)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Jobs)
	for _, key := range keys {
		g.Go(func() error {
			ni, err := r.readNarInfo(gctx, key)
			if ni == nil {
				return err
			}
			mu.Lock()
			r.infos[narInfoHash(key)] = ni
			delete(r.deriverUnknown, narInfoHash(key))
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// narInfoHash is the hash part of key, a narinfo key (listed as one, or
// checked by roots.Parse).
func narInfoHash(key string) string {
	h, _ := layout.NarInfoHash(key)
	return h
}

// staleUploads lists the unfinished multipart uploads older than Grace.
func (r *run) staleUploads(ctx context.Context) ([]s3cache.Upload, error) {
	mp, ok := r.b.(s3cache.Multiparter)
	if !ok {
		r.uploads = -1
		return nil, nil
	}
	var out []s3cache.Upload
	err := mp.ListMultipartUploads(ctx, "", func(u s3cache.Upload) error {
		r.uploads++
		if r.now.Sub(u.Initiated) >= r.opts.Grace {
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing multipart uploads: %w", err)
	}
	return out, nil
}

// readNarInfo reads and parses the narinfo at key. A narinfo gone since
// the listing (another tool) is nil and no error; one that does not parse
// is nil too, recorded as a problem (gc then fails closed).
func (r *run) readNarInfo(ctx context.Context, key string) (*narinfo.NarInfo, error) {
	data, err := r.get(ctx, key)
	if errors.Is(err, s3cache.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ni, err := narinfo.ParseString(string(data), narinfo.WithStoreDir(r.storeDir))
	if err != nil {
		r.problem("parsing %s: %v; fix or delete it (nixbucket verify lists such faults)", key, err)
		return nil, nil
	}
	return ni, nil
}
