// Package synth generates synthetic binary caches of up to millions of
// objects, for the tests and benchmarks of the commands that read a whole
// bucket (stats, gc), and writes them straight into the data directory of
// a versitygw posix server (s3test.Server.Dir) or of a file:// bucket,
// which is much quicker than one PUT per object.
//
// A cache has valid narinfos (format: Nix's src/libstore/nar-info.cc),
// NARs of the right size but zero content (sparse files: nothing reads
// them), some keyed by FileHash as nix copy does, listings, other files,
// orphan NARs, listings and logs (no narinfo names their derivations),
// optionally the live build logs of the rooted paths, and root manifests (package roots) that vouch for every rooted narinfo (NAR
// key and the MD5 of its text), with references between the paths.
// Optionally it has stray narinfos that no manifest lists (pushed without
// a root), some of them missing their NAR.
//
// The figures a correct stats should report are counted here while the
// objects are made, by what each object was made as: nothing here asks
// package stats how it classifies keys.
package synth

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/stats"
)

// Cache is a generated cache and the figures stats should report on it.
type Cache struct {
	// Sizes maps every key to its object's size.
	Sizes map[string]int64
	// Data holds the content of the objects whose content matters
	// (narinfos, manifests, nix-cache-info); the others are zeros.
	Data map[string][]byte
	// Want are the figures stats.Collect must report once every object
	// is older than gc's grace (and no gc ran): Total, ByKind, Paths,
	// Roots, KnownPaths, KnownNarSize, KnownStored, Unaccounted,
	// MissingNARs, Reclaimable (all of it condemned, none deleted yet) and
	// NarInfoGets.
	Want stats.Report
	// Reclaimable lists the keys gc condemns (everything unreachable).
	Reclaimable []string
	// Live is the number of narinfos gc keeps (the rooted paths).
	Live int
	// Manifests is the number of root manifests (roots a, b, c, d; a twice).
	Manifests int
}

// Options shape a generated cache.
type Options struct {
	// Strays is the number of narinfos no manifest lists. Of every three,
	// one has no NAR, one has its NAR keyed by FileHash, one by NarHash;
	// they refer to rooted paths.
	Strays int
	// Logs gives every rooted path a Deriver and the build log of that
	// derivation (live: gc keeps it).
	Logs bool
	// OldManifests writes the manifests as older versions of push did,
	// without the narinfos' derivers (roots.Manifest.Derivers false): gc
	// then reads the narinfos of the rooted paths that may have built a
	// log with a GET, which Want.NarInfoGets counts.
	OldManifests bool
}

// hash returns n random bytes in Nix's base-32.
func hash(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return nixbase32.EncodeToString(b)
}

// Generate makes a cache of about n objects: 0.4·n rooted store paths
// (narinfo + NAR, one in seven with a .ls listing, one in five with its
// NAR keyed by FileHash), n/20 orphan NARs, n/100 orphan listings, n/50
// orphan logs and n/50 other files. Every narinfo is vouched for by a
// manifest.
func Generate(n int) *Cache { return GenerateWith(n, Options{}) }

// GenerateWith is Generate with stray narinfos (opts).
func GenerateWith(n int, opts Options) *Cache {
	c := &Cache{Sizes: map[string]int64{}, Data: map[string][]byte{}}
	w := &c.Want
	w.ByKind = map[string]stats.Count{}
	for _, k := range stats.Kinds {
		w.ByKind[k] = stats.Count{}
	}
	add := func(key, kind string, size int64, data []byte) {
		if data != nil {
			size = int64(len(data))
			c.Data[key] = data
		}
		c.Sizes[key] = size
		k := w.ByKind[kind]
		k.Objects++
		k.Bytes += size
		w.ByKind[kind] = k
		w.Total.Objects++
		w.Total.Bytes += size
	}
	reclaim := func(key string) {
		c.Reclaimable = append(c.Reclaimable, key)
		w.Reclaimable.Objects++
		w.Reclaimable.Bytes += c.Sizes[key]
	}
	add(layout.CacheInfoKey, stats.KindOther, 0, []byte("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"))

	// storePath writes a path's narinfo and NAR (unless missing) and
	// returns its text and NAR key.
	storePath := func(h, base, narHash string, fileSize int64, narSize uint64, refs []string, deriver string, byFileHash, missing bool) ([]byte, string) {
		fileHash := narHash
		if byFileHash {
			fileHash = hash(32)
		}
		narKey := layout.NarKey(fileHash, ".zst")
		info := []byte(fmt.Sprintf("StorePath: /nix/store/%s\nURL: %s\nCompression: zstd\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: %s\n",
			base, narKey, fileHash, fileSize, narHash, narSize, strings.Join(refs, " ")))
		if deriver != "" {
			info = append(info, "Deriver: "+deriver+"\n"...)
		}
		add(h+".narinfo", stats.KindNarInfo, 0, info)
		w.Paths++
		if missing {
			w.MissingNARs++
			return info, narKey
		}
		add(narKey, stats.KindNAR, fileSize, nil)
		w.KnownPaths++
		w.KnownNarSize += narSize
		w.KnownStored += fileSize
		return info, narKey
	}

	paths := n * 4 / 10
	var entries []roots.Entry
	prev := "" // the previous path's base name: each refers to it
	for i := range paths {
		h, narHash := hash(20), hash(32)
		base := h + "-p" + strconv.Itoa(i)
		fileSize, narSize := int64(1000+i), uint64(3000+i)
		refs := []string{}
		if prev != "" {
			refs = []string{prev}
		}
		drv := ""
		if opts.Logs {
			drv = hash(20) + "-p" + strconv.Itoa(i) + ".drv"
			add(layout.LogKey(drv), stats.KindLog, 600, nil)
		}
		info, narKey := storePath(h, base, narHash, fileSize, narSize, refs, drv, i%5 == 0, false)
		if i%7 == 0 {
			add(h+".ls", stats.KindListing, 90, nil)
		}
		sum := md5.Sum(info)
		e := roots.Entry{Path: "/nix/store/" + base, NarInfo: h + ".narinfo", NarHash: "sha256:" + narHash, NarSize: narSize,
			NAR: narKey, FileSize: uint64(fileSize), NarInfoMD5: hex.EncodeToString(sum[:]), References: refs}
		if !opts.OldManifests {
			e.Deriver = drv
		}
		entries = append(entries, e)
		prev = base
	}
	c.Live = paths

	// Stray narinfos, pushed without a root: garbage once old.
	for i := range opts.Strays {
		h, narHash := hash(20), hash(32)
		base := h + "-stray" + strconv.Itoa(i)
		var refs []string
		if len(entries) > 0 {
			refs = []string{strings.TrimPrefix(entries[i%len(entries)].Path, "/nix/store/")}
		}
		_, narKey := storePath(h, base, narHash, int64(2000+i), uint64(4000+i), refs, "", i%3 == 1, i%3 == 0)
		reclaim(h + ".narinfo")
		if i%3 != 0 {
			reclaim(narKey)
		}
		if i%4 == 0 {
			add(h+".ls", stats.KindListing, 80, nil)
			reclaim(h + ".ls")
		}
	}
	w.NarInfoGets = opts.Strays
	if opts.Logs && opts.OldManifests {
		w.NarInfoGets += paths // each rooted path's name is its log's derivation's
	}

	// Orphans (killed pushes, narinfos deleted by hand).
	for i := range n / 20 {
		key := layout.NarKey(hash(32), ".xz")
		add(key, stats.KindNAR, int64(5000+i), nil)
		w.Unaccounted.Objects++
		w.Unaccounted.Bytes += int64(5000 + i)
		reclaim(key)
	}
	for range n / 100 {
		key := hash(20) + ".ls"
		add(key, stats.KindListing, 70, nil)
		reclaim(key)
	}
	for i := range n / 50 { // no narinfo names their derivations: garbage
		key := fmt.Sprintf("log/%s-drv%d.drv", hash(20), i)
		add(key, stats.KindLog, 700, nil)
		reclaim(key)
	}
	for i := range n / 50 {
		add(fmt.Sprintf("_releases/v%d/bin", i), stats.KindOther, 4096, nil)
	}

	// Roots a, b, c split the entries, root "a" with an older manifest
	// too. The references of each chunk's first entry point into the
	// previous chunk: gc's mark follows them. Root d lists two paths the
	// cache lacks and one of a's.
	third := max(len(entries)/3, 1)
	chunks := [][]roots.Entry{entries[:third], entries[third : 2*third], entries[2*third:]}
	manifest := func(name string, created time.Time, es []roots.Entry) {
		m := &roots.Manifest{Version: 1, Name: name, Created: created, StoreDir: "/nix/store", TopLevel: []string{es[len(es)-1].Path}, Paths: es,
			Derivers: !opts.OldManifests}
		data, err := json.Marshal(m)
		if err != nil {
			panic(err) // cannot happen: plain structs
		}
		add(roots.Key(name, created), stats.KindRoot, 0, data)
		c.Manifests++
	}
	rootStats := func(name string, manifests int, created time.Time, es []roots.Entry, missing int) {
		rs := stats.RootStats{Name: name, Manifests: manifests, Newest: created, Paths: len(es), Missing: missing}
		for _, e := range es {
			rs.NarSize += e.NarSize
			rs.StoredBytes += int64(e.FileSize)
		}
		w.Roots = append(w.Roots, rs)
	}
	for i, name := range []string{"a", "b", "c"} {
		created := time.Date(2026, 11, 1+i, 0, 0, 0, 0, time.UTC)
		manifest(name, created, chunks[i])
		manifests := 1
		if name == "a" {
			manifests = 2
		}
		rootStats(name, manifests, created, chunks[i], 0)
	}
	manifest("a", time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), chunks[0][:1])
	var d []roots.Entry
	for range 2 {
		h := hash(20)
		d = append(d, roots.Entry{Path: "/nix/store/" + h + "-gone", NarInfo: h + ".narinfo", NarHash: "sha256:" + hash(32), NarSize: 500, References: []string{}})
	}
	d = append(d, entries[0])
	created := time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)
	manifest("d", created, d)
	rootStats("d", 1, created, d, 2)
	w.Roots[len(w.Roots)-1].StoredBytes = int64(entries[0].FileSize) // the missing paths store nothing
	return c
}

// WriteDir writes the cache into dir, the directory of a bucket in a
// versitygw posix data directory (Server.Dir/BUCKET), with modification
// time mtime. Objects with content get the ETag (MD5) versitygw keeps in
// the user.etag extended attribute; the others are sparse files without
// one (listed with an empty ETag).
func (c *Cache) WriteDir(dir string, mtime time.Time) error {
	return c.write(dir, mtime, func(p, sum string, _ os.FileInfo) error {
		return syscall.Setxattr(p, "user.etag", []byte(`"`+sum+`"`), 0)
	})
}

// WriteFileBucket writes the cache into dir as a file:// bucket
// (s3cache.FileBucket) holds it, with modification time mtime: objects
// with content get the ETag attribute FileBucket.Put records.
func (c *Cache) WriteFileBucket(dir string, mtime time.Time) error {
	return c.write(dir, mtime, func(p, sum string, fi os.FileInfo) error {
		return syscall.Setxattr(p, s3cache.FileETagAttr, s3cache.FileETag(sum, fi), 0)
	})
}

// write writes every object under dir, 8 at a time, and calls etag for
// those with content, with the hex MD5 of the content and the file's
// final Lstat.
func (c *Cache) write(dir string, mtime time.Time, etag func(p, sum string, fi os.FileInfo) error) error {
	var mu sync.Mutex
	made := map[string]bool{}
	mkdir := func(d string) error {
		mu.Lock()
		defer mu.Unlock()
		if made[d] {
			return nil
		}
		made[d] = true
		return os.MkdirAll(d, 0o755)
	}
	var g errgroup.Group
	g.SetLimit(8)
	for key, size := range c.Sizes {
		g.Go(func() error {
			p := filepath.Join(dir, filepath.FromSlash(key))
			if err := mkdir(filepath.Dir(p)); err != nil {
				return err
			}
			if err := c.writeObject(p, key, size); err != nil {
				return fmt.Errorf("writing %s: %w", key, err)
			}
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				return err
			}
			data, ok := c.Data[key]
			if !ok {
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			sum := md5.Sum(data)
			return etag(p, hex.EncodeToString(sum[:]), fi)
		})
	}
	return g.Wait()
}

func (c *Cache) writeObject(p, key string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if data, ok := c.Data[key]; ok {
		_, err = f.Write(data)
	} else {
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
