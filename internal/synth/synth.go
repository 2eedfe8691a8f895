// Package synth generates synthetic binary caches of tens of thousands of
// objects, for the tests and benchmarks of the commands that read a whole
// bucket (stats, gc), and writes them straight into the data directory of
// a versitygw posix server (s3test.Server.Dir), which is much quicker than
// one PUT per object.
//
// A cache has valid narinfos (format: Nix's src/libstore/nar-info.cc),
// NARs of the right size but zero content (sparse files: nothing reads
// them), listings, logs, other files, orphan NARs, and root manifests
// (gc/roots) covering half of the paths, with references between them.
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

	"github.com/nixbucket/nixbucket/gc/roots"
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
	// is older than gc's grace: Total, ByKind, Paths, KnownPaths,
	// KnownNarSize, KnownStored, Unaccounted and Reclaimable.
	Want stats.Report
	// Manifests is the number of root manifests (roots a, b, c; a twice).
	Manifests int
}

// hash returns n random bytes in Nix's base-32.
func hash(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return nixbase32.EncodeToString(b)
}

// Generate makes a cache of about n objects: 0.4·n store paths (narinfo +
// NAR, one in seven with a .ls listing), half of them in three roots,
// n/20 orphan NARs, n/50 logs and n/50 other files.
func Generate(n int) *Cache {
	c := &Cache{Sizes: map[string]int64{}, Data: map[string][]byte{}}
	c.Want.ByKind = map[string]stats.Count{}
	add := func(key string, size int64, data []byte) {
		if data != nil {
			size = int64(len(data))
			c.Data[key] = data
		}
		c.Sizes[key] = size
		k := c.Want.ByKind[stats.KindOf(key)]
		k.Objects++
		k.Bytes += size
		c.Want.ByKind[stats.KindOf(key)] = k
		c.Want.Total.Objects++
		c.Want.Total.Bytes += size
	}
	add("nix-cache-info", 0, []byte("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"))
	paths := n * 4 / 10
	var entries []roots.Entry
	prev := "" // the previous rooted path's base name: each refers to it
	for i := range paths {
		h, narHash := hash(20), hash(32)
		base := h + "-p" + strconv.Itoa(i)
		narKey := "nar/" + narHash + ".nar.zst"
		fileSize, narSize := int64(1000+i), uint64(3000+i)
		rooted := i%2 == 0 // half the paths belong to a root
		var refs []string
		if rooted && prev != "" {
			refs = []string{prev}
		}
		info := []byte(fmt.Sprintf("StorePath: /nix/store/%s\nURL: %s\nCompression: zstd\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: %s\n",
			base, narKey, narHash, fileSize, narHash, narSize, strings.Join(refs, " ")))
		add(h+".narinfo", 0, info)
		add(narKey, fileSize, nil)
		if i%7 == 0 {
			add(h+".ls", 90, nil)
		}
		c.Want.Paths++
		if rooted {
			e := roots.Entry{Path: "/nix/store/" + base, NarInfo: h + ".narinfo", NarHash: "sha256:" + narHash, NarSize: narSize, References: refs}
			if refs == nil {
				e.References = []string{}
			}
			if i%4 == 0 { // recorded by the push that uploaded it
				sum := md5.Sum(info)
				e.NAR, e.FileSize, e.NarInfoMD5 = narKey, uint64(fileSize), hex.EncodeToString(sum[:])
			}
			entries = append(entries, e)
			prev = base
			c.Want.KnownPaths++
			c.Want.KnownNarSize += narSize
			c.Want.KnownStored += fileSize
		} else {
			// An unaccounted NAR; reclaimable with its narinfo (and listing) once old.
			c.Want.Unaccounted.Objects++
			c.Want.Unaccounted.Bytes += fileSize
			c.Want.Reclaimable.Objects += 2
			c.Want.Reclaimable.Bytes += fileSize + int64(len(info))
			if i%7 == 0 {
				c.Want.Reclaimable.Objects++
				c.Want.Reclaimable.Bytes += 90
			}
		}
	}
	// Orphan NARs (killed pushes).
	for i := range n / 20 {
		add("nar/"+hash(32)+".nar.xz", int64(5000+i), nil)
		c.Want.Unaccounted.Objects++
		c.Want.Unaccounted.Bytes += int64(5000 + i)
		c.Want.Reclaimable.Objects++
		c.Want.Reclaimable.Bytes += int64(5000 + i)
	}
	for i := range n / 50 {
		add(fmt.Sprintf("log/%s-drv%d.drv", hash(20), i), 700, nil)
	}
	for i := range n / 50 {
		add(fmt.Sprintf("_releases/v%d/bin", i), 4096, nil)
	}
	// Three roots splitting the entries, root "a" with an older manifest
	// too. The references of each chunk's first entry may point into the
	// previous chunk: gc's mark follows them, stats does not need to.
	third := len(entries) / 3
	chunks := [][]roots.Entry{entries[:third], entries[third : 2*third], entries[2*third:]}
	manifest := func(name string, created time.Time, es []roots.Entry) {
		m := &roots.Manifest{Version: 1, Name: name, Created: created, StoreDir: "/nix/store", TopLevel: []string{es[len(es)-1].Path}, Paths: es}
		data, err := json.Marshal(m)
		if err != nil {
			panic(err) // cannot happen: plain structs
		}
		add(roots.Key(name, created), 0, data)
		c.Manifests++
	}
	for i, name := range []string{"a", "b", "c"} {
		manifest(name, time.Date(2026, 11, 1+i, 0, 0, 0, 0, time.UTC), chunks[i])
	}
	manifest("a", time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), chunks[0][:1])
	return c
}

// WriteDir writes the cache into dir, the directory of a bucket in a
// versitygw posix data directory (Server.Dir/BUCKET), with modification
// time mtime. Objects with content get the ETag (MD5) versitygw keeps in
// the user.etag extended attribute; the others are sparse files without
// one (listed with an empty ETag).
func (c *Cache) WriteDir(dir string, mtime time.Time) error {
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
			return os.Chtimes(p, mtime, mtime)
		})
	}
	return g.Wait()
}

func (c *Cache) writeObject(p, key string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	data, ok := c.Data[key]
	if ok {
		_, err = f.Write(data)
	} else {
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || !ok {
		return err
	}
	sum := md5.Sum(data)
	return syscall.Setxattr(p, "user.etag", []byte(`"`+hex.EncodeToString(sum[:])+`"`), 0)
}
