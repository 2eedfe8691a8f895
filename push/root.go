package push

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// RootOptions name the root manifest a push records.
type RootOptions struct {
	// Name is the root's name (roots.CheckName).
	Name string
	// TopLevel are the paths the push was asked for.
	TopLevel []string
	// Now, if set, is the manifest's time; default time.Now. Tests use it
	// to simulate weeks.
	Now func() time.Time
}

// presentInfo is a narinfo the cache already had, as read.
type presentInfo struct {
	ni  *narinfo.NarInfo
	md5 string // hex MD5 of its text: its ETag
}

// narinfoMax bounds the size of a narinfo read.
const narinfoMax = 1 << 20

// errVanished marks a narinfo found present that readPresent could not
// read: a push that read it before its lock was held starts again under
// the lock.
var errVanished = errors.New("narinfo vanished")

// readPresent reads the narinfos of the paths of order the cache already
// had (present, by hash part), metaJobs at a time, so that the root
// manifest records the NAR of every path: the narinfo's own URL, whatever
// tool wrote it (nix copy keys NARs by FileHash, not NarHash).
func (p *pusher) readPresent(ctx context.Context, order []string, present map[string]bool) (map[string]presentInfo, error) {
	var mu sync.Mutex
	had := make(map[string]presentInfo)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(p.metaJobs)
	for _, sp := range order {
		if !present[storepath.HashPart(sp)] {
			continue
		}
		g.Go(func() error {
			key := layout.NarInfoKeyOf(sp)
			data, err := s3cache.ReadSmall(ctx, p.b, key, narinfoMax)
			if errors.Is(err, s3cache.ErrNotFound) {
				return fmt.Errorf("%s was in the cache when the push began but is gone now (a gc beside a push without the lock?); run the push again: %w", key, errVanished)
			}
			if err != nil {
				return fmt.Errorf("reading %s for the root manifest: %w", key, err)
			}
			ni, err := narinfo.ParseString(string(data), narinfo.WithStoreDir(p.storeDir))
			if err != nil {
				return fmt.Errorf("reading %s for the root manifest: %w", key, err)
			}
			if ni.StorePath != sp {
				return fmt.Errorf("reading %s for the root manifest: it describes %s, not %s", key, ni.StorePath, sp)
			}
			sum := md5.Sum(data)
			mu.Lock()
			had[sp] = presentInfo{ni: ni, md5: hex.EncodeToString(sum[:])}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return had, nil
}

// recordRoot writes the manifest of the pushed closure. Every entry names
// the path's NAR and the MD5 of its narinfo, from the narinfo this push
// wrote or the one the cache had; the entry's NarHash, NarSize and
// References are the narinfo's, which is what readers of the cache see;
// its Sigs too, so that verify with trusted keys needs no GET either, and
// its Deriver, so that gc knows which build log it keeps without one.
// A path left upstream has an entry marked Upstream, from the local
// store's info, naming no NAR or narinfo of this cache.
func (a *attempt) recordRoot(ctx context.Context, ro *RootOptions) (string, error) {
	now := time.Now
	if ro.Now != nil {
		now = ro.Now
	}
	m := &roots.Manifest{Name: ro.Name, Created: now(), StoreDir: a.storeDir, TopLevel: ro.TopLevel, Derivers: true}
	for _, sp := range a.g.Paths() {
		info := a.g.Info(sp)
		e := roots.Entry{
			Path:       sp,
			NarInfo:    layout.NarInfoKeyOf(sp),
			NarHash:    "sha256:" + nixbase32.EncodeToString(info.NarHash.Digest()),
			NarSize:    info.NarSize,
			References: baseNames(info.References),
		}
		if _, up := a.plan.upstream[sp]; up {
			e.Upstream = true
		} else if ni := a.written[sp]; ni != nil {
			sum := md5.Sum([]byte(ni.String())) // the text writeNarInfo wrote
			e.NAR, e.FileSize, e.NarInfoMD5, e.Sigs, e.Deriver = ni.URL, ni.FileSize, hex.EncodeToString(sum[:]), ni.Sigs, ni.Deriver
		} else if h, ok := a.had[sp]; ok {
			e.NAR, e.FileSize, e.NarInfoMD5, e.Sigs, e.Deriver = h.ni.URL, h.ni.FileSize, h.md5, h.ni.Sigs, h.ni.Deriver
			e.NarHash, e.NarSize, e.References = h.ni.NarHash.Format(nixhash.NixBase32, true), h.ni.NarSize, h.ni.References
			if e.References == nil {
				e.References = []string{}
			}
		} else {
			return "", fmt.Errorf("recording root %s: %s was neither pushed nor read from the cache", ro.Name, sp)
		}
		m.Paths = append(m.Paths, e)
	}
	for sp, info := range a.plan.upstreamOutside {
		m.Paths = append(m.Paths, roots.Entry{Path: sp, NarInfo: layout.NarInfoKeyOf(sp), Upstream: true,
			NarHash: "sha256:" + nixbase32.EncodeToString(info.NarHash.Digest()), NarSize: info.NarSize,
			References: baseNames(info.References)})
	}
	slices.SortFunc(m.Paths, func(x, y roots.Entry) int { return strings.Compare(x.Path, y.Path) })
	if m.StoreDir == "" && len(ro.TopLevel) > 0 {
		m.StoreDir = path.Dir(ro.TopLevel[0])
	}
	key, err := roots.Write(ctx, a.b, m)
	if err != nil {
		return "", fmt.Errorf("recording root %s: %w", ro.Name, err)
	}
	a.log.Debug("recorded root", "key", key, "paths", len(m.Paths), "read", len(a.had))
	return key, nil
}
