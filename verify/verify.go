package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
)

// Fault kinds, the Kind of a Fault.
const (
	// KindCacheInfo: nix-cache-info is missing while narinfos exist, or
	// unreadable.
	KindCacheInfo = "cache-info"
	// KindParse: a narinfo does not parse.
	KindParse = "parse"
	// KindStorePath: a narinfo's StorePath does not have its key's hash part.
	KindStorePath = "store-path"
	// KindMissingNAR: the NAR a narinfo's URL names is not in the bucket.
	KindMissingNAR = "missing-nar"
	// KindNARSize: the NAR object's size is not the narinfo's FileSize.
	KindNARSize = "nar-size"
	// KindMissingReference: a reference has no narinfo in the bucket.
	KindMissingReference = "missing-reference"
	// KindUnsigned: no signature by a trusted key.
	KindUnsigned = "unsigned"
	// KindBadSignature: a signature by a trusted key name does not verify,
	// and none verifies.
	KindBadSignature = "bad-signature"
	// KindFileHash: the downloaded NAR object does not have the narinfo's
	// FileHash or FileSize (Deep).
	KindFileHash = "file-hash"
	// KindNARHash: the decompressed NAR does not have the narinfo's
	// NarHash or NarSize (Deep).
	KindNARHash = "nar-hash"
	// KindNARInvalid: the NAR object does not decompress, or is not a NAR
	// that Nix would accept (Deep).
	KindNARInvalid = "nar-invalid"
	// KindCompression: the narinfo's compression cannot be checked here
	// (Deep); xz, zstd, bzip2 and none can.
	KindCompression = "compression"
)

// Options tune Check.
type Options struct {
	// TrustedKeys, when not empty, requires every narinfo to carry a
	// valid signature by one of these keys.
	TrustedKeys signing.PublicKeys
	// Deep downloads every NAR and checks its hashes, sizes and
	// structure.
	Deep bool
	// Jobs bounds the NARs checked at once (Deep); narinfos are fetched
	// 4×Jobs at a time. 0 means 8. Each NAR in flight holds one
	// decompressor window (8 MiB for Nix's xz, at most 8 MiB for zstd NARs
	// nixbucket writes).
	Jobs int
	// Paths, when not empty, restricts the check to the narinfos of these
	// store paths (the bucket's whole listing is still read, for the NARs
	// and the references); OrphanNARs is then not counted.
	Paths []string
	// RequireComplete makes every reference left to upstream (push
	// --skip-signed-by; see upstream.go) a KindMissingReference fault,
	// for a cache that must serve whole closures alone.
	RequireComplete bool
	// Repair, if set, repairs the NARs that Deep finds damaged (see
	// RepairOptions); it needs Deep.
	Repair *RepairOptions
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

// Fault is one violation of the cache's invariant.
type Fault struct {
	// Key is the object concerned, usually a narinfo's key.
	Key string `json:"key"`
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Detail says what is wrong, naming the other objects involved.
	Detail string `json:"detail"`
}

// String renders the fault as one line: "KIND KEY: DETAIL".
func (f Fault) String() string { return f.Kind + " " + f.Key + ": " + f.Detail }

// Report is what Check found; its JSON form is what `verify --json` prints.
type Report struct {
	// Objects is the number of objects listed.
	Objects int `json:"objects"`
	// NarInfos is the number of narinfos checked.
	NarInfos int `json:"narinfos"`
	// NarInfoGets is the number of narinfos read with a GET: those no
	// root manifest vouches for (all of them with Deep), and vouched ones
	// in which a fault was found.
	NarInfoGets int `json:"narinfoGets"`
	// NARs is the number of objects under nar/.
	NARs int `json:"nars"`
	// OrphanNARs is the number of NARs no narinfo points to: left by an
	// interrupted push, invisible to readers, not a fault.
	OrphanNARs int `json:"orphanNars"`
	// Signed is the number of narinfos with a valid signature by a
	// trusted key (0 when no keys are given).
	Signed int `json:"signed"`
	// UpstreamReferences is the number of distinct store paths that
	// narinfos refer to, that have no narinfo in the bucket, and that the
	// cache records as left to upstream (push --skip-signed-by): not
	// faults, unless Options.RequireComplete.
	UpstreamReferences int `json:"upstreamReferences"`
	// Deep reports whether the NARs were downloaded and checked.
	Deep bool `json:"deep"`
	// NARsChecked is the number of NARs downloaded and checked (Deep).
	NARsChecked int `json:"narsChecked"`
	// FileBytes is the number of compressed bytes downloaded (Deep).
	FileBytes uint64 `json:"fileBytes"`
	// NarBytes is the number of NAR bytes decompressed and checked (Deep).
	NarBytes uint64 `json:"narBytes"`
	// Faults lists the violations found, sorted by key then kind; empty
	// when the cache is sound. Those a repair fixed stay listed.
	Faults []Fault `json:"faults"`
	// Repaired lists the narinfos whose NAR was uploaded again
	// (Options.Repair), sorted by key.
	Repaired []Repair `json:"repaired,omitempty"`
	// Unrepaired lists the narinfos with a damaged NAR that a repair could
	// not fix, each with the reason, sorted by key.
	Unrepaired []Repair `json:"unrepaired,omitempty"`
}

// OK reports whether no fault was found.
func (r *Report) OK() bool { return len(r.Faults) == 0 }

// checker holds one Check's state.
type checker struct {
	b        s3cache.Bucket
	opts     Options
	log      *slog.Logger
	storeDir string // the cache's StoreDir

	mu     sync.Mutex
	report Report
	// upstream holds the hash parts recorded as left upstream; leftUp
	// and missingRefs the references found without a narinfo, left
	// upstream or not, by referring key and reference (upstream.go).
	upstream    map[string]bool
	leftUp      map[string]leftRef
	missingRefs map[string]leftRef
	// manifestsRead reports whether vouched read the manifests (and so
	// their upstream entries).
	manifestsRead bool
}

func (c *checker) fault(key, kind, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report.Faults = append(c.report.Faults, Fault{Key: key, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// Check lists b once and checks every narinfo in it (see the package
// documentation). Faults of the cache are in the report; the error is for
// a check that could not be completed (listing or reading failed). A
// repair that fails (Options.Repair) returns the report with the error.
func Check(ctx context.Context, b s3cache.Bucket, opts Options) (*Report, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = 8
	}
	if opts.Repair != nil && !opts.Deep {
		return nil, errors.New("verify: a repair needs Deep: only the download finds damaged NARs")
	}
	c := &checker{b: b, opts: opts, log: opts.Logger, leftUp: map[string]leftRef{}, missingRefs: map[string]leftRef{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.report.Deep = opts.Deep
	c.report.Faults = []Fault{}

	var only map[string]bool
	if len(opts.Paths) > 0 {
		only = make(map[string]bool, len(opts.Paths))
		for _, p := range opts.Paths {
			only[layout.NarInfoKeyOf(p)] = true
		}
	}
	sizes := make(map[string]int64)
	etags := make(map[string]string) // of the narinfos to check, if listed with one
	var infoKeys, manifests, records []string
	err := b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		sizes[o.Key] = o.Size
		if _, ok := layout.NarInfoHash(o.Key); ok {
			if only == nil || only[o.Key] {
				infoKeys = append(infoKeys, o.Key)
				if o.ETag != "" {
					etags[o.Key] = o.ETag
				}
			}
		} else if layout.IsNar(o.Key) {
			c.report.NARs++
		} else if _, pin, err := roots.ParseKey(o.Key); err == nil && !pin {
			manifests = append(manifests, o.Key)
		} else if _, err := roots.ParseUpstreamKey(o.Key); err == nil {
			records = append(records, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the cache: %w", err)
	}
	c.report.Objects = len(sizes)
	c.log.Debug("listed cache", "objects", len(sizes), "narinfos", len(infoKeys), "manifests", len(manifests))

	storeDir, err := c.readStoreDir(ctx, sizes, len(infoKeys) > 0)
	if err != nil {
		return nil, err
	}
	c.storeDir = storeDir
	if err := c.readUpstreamRecords(ctx, records); err != nil {
		return nil, err
	}
	infos, err := c.learnNarInfos(ctx, infoKeys, manifests, etags, sizes)
	if err != nil {
		return nil, err
	}
	if err := c.settleUpstream(ctx, manifests, c.manifestsRead); err != nil {
		return nil, err
	}
	c.report.NarInfos = len(infos)

	used := make(map[string]bool, len(infos))
	for _, key := range infoKeys {
		if ni := infos[key]; ni != nil {
			used[ni.URL] = true
		}
	}
	for k := range sizes {
		if only == nil && layout.IsNar(k) && !used[k] {
			c.report.OrphanNARs++
		}
	}
	if opts.Deep {
		if err := c.checkNARs(ctx, infoKeys, infos, sizes); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(c.report.Faults, func(a, b Fault) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.Kind, b.Kind), strings.Compare(a.Detail, b.Detail))
	})
	if opts.Repair != nil {
		if err := c.repairNARs(ctx, infos); err != nil {
			return &c.report, err
		}
	}
	return &c.report, nil
}

// readStoreDir reads the StoreDir of nix-cache-info; a missing file is a
// fault when narinfos exist. Without one, storepath.DefaultDir is
// assumed.
func (c *checker) readStoreDir(ctx context.Context, sizes map[string]int64, haveInfos bool) (string, error) {
	if _, ok := sizes[layout.CacheInfoKey]; !ok {
		if haveInfos {
			c.fault(layout.CacheInfoKey, KindCacheInfo, "missing: Nix refuses a binary cache without it")
		}
		return storepath.DefaultDir(), nil
	}
	body, err := s3cache.ReadSmall(ctx, c.b, layout.CacheInfoKey, 1<<16)
	if errors.Is(err, s3cache.ErrNotFound) {
		c.fault(layout.CacheInfoKey, KindCacheInfo, "listed but not found")
		return storepath.DefaultDir(), nil
	}
	if err != nil {
		return "", err // it names the key
	}
	if dir := narinfo.CacheInfoValue(string(body), "StoreDir"); dir != "" {
		return dir, nil
	}
	return storepath.DefaultDir(), nil
}

// fetchNarInfos downloads and parses the narinfos, 4×Jobs at a time. A
// narinfo that does not parse is a fault and absent from the result; one
// deleted since the listing is skipped.
func (c *checker) fetchNarInfos(ctx context.Context, keys []string) (map[string]*narinfo.NarInfo, error) {
	var mu sync.Mutex
	infos := make(map[string]*narinfo.NarInfo, len(keys))
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(4 * c.opts.Jobs)
	for _, key := range keys {
		eg.Go(func() error {
			body, err := s3cache.ReadSmall(ctx, c.b, key, 1<<24)
			if errors.Is(err, s3cache.ErrNotFound) {
				c.log.Debug("narinfo deleted since the listing", "key", key)
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", key, err)
			}
			ni, err := narinfo.ParseString(string(body), narinfo.WithStoreDir(c.storeDir))
			if err != nil {
				c.fault(key, KindParse, "%v", err)
				return nil
			}
			mu.Lock()
			infos[key] = ni
			mu.Unlock()
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return infos, nil
}

// learnNarInfos learns what the checks need of every narinfo (keys):
// from a root manifest that vouches for it (see vouched; never with
// Deep, which needs every field), else with a GET. A vouched narinfo the
// checks find any fault in is read after all and checked again, so that
// every fault reported is the narinfo's own, never a manifest's: a
// manifest can spare a GET, not hide or invent a fault of the narinfos
// it names. The narinfos checked are returned by key.
func (c *checker) learnNarInfos(ctx context.Context, keys, manifests []string, etags map[string]string, sizes map[string]int64) (map[string]*narinfo.NarInfo, error) {
	vouch := map[string]*narinfo.NarInfo{}
	if !c.opts.Deep && len(manifests) > 0 && len(etags) > 0 {
		var err error
		if vouch, err = c.vouched(ctx, manifests, sizes, etags); err != nil {
			return nil, err
		}
		c.manifestsRead = true
	}
	var read, recheck []string
	for _, k := range keys {
		if vouch[k] == nil {
			read = append(read, k)
		}
	}
	infos, err := c.fetchNarInfos(ctx, read)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		if ni := vouch[key]; ni != nil {
			if faults, signed := c.checkNarInfo(key, ni, sizes); len(faults) > 0 {
				recheck = append(recheck, key)
			} else {
				c.record(nil, signed)
				infos[key] = ni
			}
		} else if ni := infos[key]; ni != nil {
			c.record(c.checkNarInfo(key, ni, sizes))
		}
	}
	if len(recheck) > 0 {
		c.log.Debug("vouched narinfos with faults read", "n", len(recheck))
		again, err := c.fetchNarInfos(ctx, recheck)
		if err != nil {
			return nil, err
		}
		for _, key := range recheck {
			if ni := again[key]; ni != nil {
				infos[key] = ni
				c.record(c.checkNarInfo(key, ni, sizes))
			}
		}
	}
	c.report.NarInfoGets = len(read) + len(recheck)
	return infos, nil
}

// record adds the faults of one narinfo to the report, and counts it as
// signed.
func (c *checker) record(faults []Fault, signed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report.Faults = append(c.report.Faults, faults...)
	if signed {
		c.report.Signed++
	}
}

// checkNarInfo checks what the listing alone can tell about one narinfo:
// its store path, its NAR's presence and size, its references and its
// signatures. It returns the faults and whether a trusted key signed it.
func (c *checker) checkNarInfo(key string, ni *narinfo.NarInfo, sizes map[string]int64) (faults []Fault, signed bool) {
	fault := func(kind, format string, args ...any) {
		faults = append(faults, Fault{Key: key, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	hash, _ := layout.NarInfoHash(key)
	if !strings.HasPrefix(storepath.Base(ni.StorePath), hash+"-") {
		fault(KindStorePath, "StorePath %s does not have the key's hash part %s", ni.StorePath, hash)
	}
	size, ok := sizes[ni.URL]
	switch {
	case !ok:
		fault(KindMissingNAR, "NAR %s of %s is not in the bucket", ni.URL, ni.StorePath)
	case ni.FileSize != 0 && uint64(size) != ni.FileSize:
		fault(KindNARSize, "NAR %s is %d bytes, the narinfo's FileSize is %d", ni.URL, size, ni.FileSize)
	}
	for _, ref := range ni.References {
		if _, ok := sizes[layout.NarInfoKeyOf(ref)]; !ok {
			if f, ok := c.missingRef(key, ni.StorePath, ref); ok {
				faults = append(faults, f)
			}
		}
	}
	if len(c.opts.TrustedKeys) > 0 {
		kind, detail := c.checkSignatures(ni)
		if kind == "" {
			return faults, true
		}
		fault(kind, "%s", detail)
	}
	return faults, false
}

// checkSignatures requires one valid signature by a trusted key, as Nix's
// require-sigs does; it returns the fault's kind and detail, or "" when
// one verifies.
func (c *checker) checkSignatures(ni *narinfo.NarInfo) (kind, detail string) {
	fp, err := ni.Fingerprint()
	if err != nil {
		return KindBadSignature, err.Error()
	}
	n, err := c.opts.TrustedKeys.CountValid([]byte(fp), ni.Sigs)
	if n > 0 {
		return "", ""
	}
	var trusted, others []string
	for _, s := range ni.Sigs {
		name, _, _ := strings.Cut(s, ":")
		if _, ok := c.opts.TrustedKeys[name]; ok {
			trusted = append(trusted, name)
		} else {
			others = append(others, name)
		}
	}
	switch {
	case err != nil || len(trusted) > 0:
		return KindBadSignature, fmt.Sprintf("the signature of %s by %s does not verify", ni.StorePath, strings.Join(trusted, ", "))
	case len(others) > 0:
		return KindUnsigned, fmt.Sprintf("%s is signed only by untrusted keys: %s", ni.StorePath, strings.Join(others, ", "))
	default:
		return KindUnsigned, fmt.Sprintf("%s has no signature", ni.StorePath)
	}
}
