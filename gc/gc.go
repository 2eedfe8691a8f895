package gc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/storepath"
)

// CondemnedPrefix is the key prefix of the records of condemned objects.
const CondemnedPrefix = "gc/condemned/"

// DefaultGrace is the default of Options.Grace: longer than any push.
const DefaultGrace = 24 * time.Hour

// ErrFailClosed is returned (wrapped) when gc deletes nothing because it
// cannot account for something in the bucket.
var ErrFailClosed = errors.New("gc deleted nothing")

// Options tune Run.
type Options struct {
	// KeepLast keeps, per root name, the newest KeepLast manifests.
	KeepLast int
	// KeepWithin keeps the manifests younger than this.
	KeepWithin time.Duration
	// Grace protects objects younger than it, and is the delay between
	// condemning and deleting; 0 means DefaultGrace, negative means none.
	Grace time.Duration
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// Now, if set, is the time gc runs at instead of the server's clock
	// (tests simulate weeks with it). By default gc reads the server's
	// clock (lock.Clock), which stamps the objects' LastModified, so a
	// local clock hours ahead does not make young objects look old.
	Now func() time.Time
	// Clock is the local clock; nil means time.Now. Only its passing is
	// used, to advance the server's time read once; tests skew it.
	Clock func() time.Time
	// Jobs bounds the GETs in flight; 0 means 32.
	Jobs int
	// Lock, if set, is how the exclusive lock is taken (not in a dry run).
	Lock *lock.Options
	// Logger receives progress records; nil discards them.
	Logger *slog.Logger
}

// Action operations.
const (
	OpExpire  = "expire"  // a root manifest past retention is deleted
	OpCondemn = "condemn" // an unreachable object is recorded, kept for now
	OpDelete  = "delete"  // a condemned object is deleted
	OpAbort   = "abort"   // an unfinished multipart upload is aborted
)

// Action is one thing gc does (or would do, in a dry run).
type Action struct {
	// Op is one of OpExpire, OpCondemn, OpDelete, OpAbort.
	Op string `json:"op"`
	// Key is the object's (or upload's) key.
	Key string `json:"key"`
	// Size is the object's size in bytes (0 for uploads).
	Size int64 `json:"size"`
	// Reason says why.
	Reason string `json:"reason"`
}

// Report is what Run did; its JSON form is what `gc --json` prints.
type Report struct {
	// DryRun reports that nothing was changed.
	DryRun bool `json:"dryRun"`
	// Objects and Bytes are the bucket's size when listed.
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// Roots is the number of root names; Manifests of manifests, Kept of
	// which were kept.
	Roots     int `json:"roots"`
	Manifests int `json:"manifests"`
	Kept      int `json:"kept"`
	// NarInfos is the number of narinfos; Live of which are reachable.
	NarInfos int `json:"narinfos"`
	Live     int `json:"live"`
	// NarInfoGets is the number of narinfos read with a GET; the others
	// were known from kept manifests (their ETag matched).
	NarInfoGets int `json:"narinfoGets"`
	// Young is the number of narinfos kept only for being younger than the grace.
	Young int `json:"young"`
	// Condemned is the number of objects condemned now or still waiting.
	Condemned int `json:"condemned"`
	// Deleted and FreedBytes count the objects deleted (manifests included).
	Deleted    int   `json:"deleted"`
	FreedBytes int64 `json:"freedBytes"`
	// Aborted is the number of multipart uploads aborted.
	Aborted int `json:"aborted"`
	// Mismatches counts manifest entries whose references differ from
	// their narinfo's (both are followed).
	Mismatches int `json:"mismatches"`
	// Actions lists every change, in the order made.
	Actions []Action `json:"actions"`
}

var (
	narinfoRE = regexp.MustCompile(`^([0-9a-df-np-sv-z]{32})\.narinfo$`)
	listingRE = regexp.MustCompile(`^([0-9a-df-np-sv-z]{32})\.ls$`)
)

// collectable reports whether gc may ever delete key: narinfos, NARs and
// .ls listings. Everything else (nix-cache-info, logs, roots, locks,
// stats, realisations, other files) is left alone.
func collectable(key string) bool {
	return narinfoRE.MatchString(key) || listingRE.MatchString(key) || strings.HasPrefix(key, "nar/")
}

// condemnedRecord is the JSON of gc/condemned/<time>.json.
type condemnedRecord struct {
	Created time.Time `json:"created"`
	// Keys maps each condemned key to when it was first condemned.
	Keys map[string]time.Time `json:"keys"`
}

// run holds one gc's state.
type run struct {
	b    s3cache.Bucket
	opts Options
	log  *slog.Logger
	now  time.Time
	rep  *Report
	lock *lock.Lock // held, or nil

	objects   map[string]s3cache.ObjectInfo
	index     roots.Index
	records   []string // condemned record keys
	storeDir  string
	manifests []*roots.Manifest
	kept      []string                    // the manifests' keys
	infos     map[string]*narinfo.NarInfo // by hash part
	uploads   int                         // unfinished multipart uploads listed; -1 if none can be
	gets      atomic.Int64

	// problems are why gc must delete nothing (fail closed); Run stops
	// at the first phase that finds any, Inspect carries on.
	mu       sync.Mutex
	problems []string
}

// Plan is what a dry run found (Inspect): the figures and actions of its
// report and what they were computed from. Package stats reports on a
// bucket from it, so that its "reclaimable" is gc's own plan.
type Plan struct {
	// Report is the dry run's report.
	Report *Report
	// Problems say why Run would delete nothing (it fails closed); empty
	// when it would run. The report is then computed without what could
	// not be read.
	Problems []string
	// Now is the time the plan is for (the server's clock, or Options.Now).
	Now time.Time
	// Objects is the listing, by key.
	Objects map[string]s3cache.ObjectInfo
	// Roots are the root names and manifest keys listed.
	Roots roots.Index
	// Manifests are the kept manifests read, by key.
	Manifests map[string]*roots.Manifest
	// NarInfos is what is known of each narinfo, by key: StorePath, URL,
	// NarSize, FileSize and References, from a kept manifest entry whose
	// recorded MD5 is the listed ETag, else from the narinfo itself.
	NarInfos map[string]*narinfo.NarInfo
	// NarInfoGets is the number of narinfos read with a GET.
	NarInfoGets int
	// Gets is the number of GET requests made (manifests, narinfos,
	// nix-cache-info, condemnation records).
	Gets int
	// Uploads is the number of unfinished multipart uploads listed; -1
	// when the bucket has none to list.
	Uploads int
}

func (o *Options) defaults() {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	switch {
	case o.Grace == 0:
		o.Grace = DefaultGrace
	case o.Grace < 0:
		o.Grace = 0
	}
	if o.Jobs <= 0 {
		o.Jobs = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func newRun(b s3cache.Bucket, opts Options) *run {
	opts.defaults()
	return &run{b: b, opts: opts, log: opts.Logger, rep: &Report{DryRun: opts.DryRun, Actions: []Action{}}}
}

// Run collects garbage in b (see the package documentation).
func Run(ctx context.Context, b s3cache.Bucket, opts Options) (*Report, error) {
	r := newRun(b, opts)
	if r.opts.Lock != nil && !r.opts.DryRun {
		lo := *r.opts.Lock
		if lo.Clock == nil {
			lo.Clock = r.opts.Clock
		}
		l, err := lock.Acquire(ctx, b, lock.Exclusive, lo)
		if err != nil {
			return nil, err
		}
		defer l.Release()
		r.lock = l
	}
	p, err := r.plan(ctx, false)
	if err != nil {
		return nil, err
	}
	if r.opts.DryRun {
		r.report(p)
		return r.rep, nil
	}
	if err := r.sweep(ctx, p); err != nil {
		return r.rep, err
	}
	return r.rep, nil
}

// Inspect plans as a dry run of Run with opts does, without a lock, and
// returns the plan even when Run would fail closed (Plan.Problems says
// why). It changes nothing.
func Inspect(ctx context.Context, b s3cache.Bucket, opts Options) (*Plan, error) {
	opts.DryRun, opts.Lock = true, nil
	r := newRun(b, opts)
	p, err := r.plan(ctx, true)
	if err != nil {
		return nil, err
	}
	r.report(p)
	out := &Plan{
		Report: r.rep, Problems: r.problems, Now: r.now, Objects: r.objects, Roots: r.index,
		Manifests: map[string]*roots.Manifest{}, NarInfos: make(map[string]*narinfo.NarInfo, len(r.infos)),
		NarInfoGets: r.rep.NarInfoGets, Gets: int(r.gets.Load()), Uploads: r.uploads,
	}
	for i, m := range r.manifests {
		if m != nil {
			out.Manifests[r.kept[i]] = m
		}
	}
	for h, ni := range r.infos {
		out.NarInfos[h+".narinfo"] = ni
	}
	return out, nil
}

// problem records a reason to delete nothing.
func (r *run) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// failClosed returns the error of the problems found, if any, unless
// tolerant (Inspect).
func (r *run) failClosed(tolerant bool) error {
	if tolerant || len(r.problems) == 0 {
		return nil
	}
	slices.Sort(r.problems)
	return fmt.Errorf("%s: %w", strings.Join(r.problems, "; "), ErrFailClosed)
}

// planned is what a run will do, in order.
type planned struct {
	expired   []Action
	batches   [][]Action // deletions, each batch one DeleteObjects request
	condemned map[string]time.Time
	uploads   []s3cache.Upload
}

// plan reads the bucket and decides; with tolerant, problems do not stop it.
func (r *run) plan(ctx context.Context, tolerant bool) (*planned, error) {
	switch {
	case r.opts.Now != nil:
		r.now = r.opts.Now().UTC()
	case r.lock != nil:
		r.now = r.lock.Now()
	default:
		c, err := lock.NewClock(ctx, r.b, r.opts.Clock)
		if err != nil {
			return nil, err
		}
		r.now = c.Now()
	}
	if err := r.list(ctx); err != nil {
		return nil, err
	}
	if err := r.failClosed(tolerant); err != nil {
		return nil, err
	}
	expired, err := r.retain(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.failClosed(tolerant); err != nil {
		return nil, err
	}
	if err := r.readNarInfos(ctx); err != nil {
		return nil, err
	}
	if old := r.oldNarInfos(); r.keptRead() == 0 && old > 0 {
		r.problem("the cache has %d narinfos older than the grace and no root to keep: gc would delete them all; push with --root NAME first, or use `nixbucket erase`", old)
	}
	if err := r.failClosed(tolerant); err != nil {
		return nil, err
	}
	live := r.mark()
	since, err := r.readCondemned(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.failClosed(tolerant); err != nil {
		return nil, err
	}
	del, condemned := r.decide(live, since)
	uploads, err := r.staleUploads(ctx)
	if err != nil {
		return nil, err
	}
	p := &planned{expired: expired, condemned: condemned, uploads: uploads}
	p.batches = append(p.batches, chunks(expired)...)
	var infos, rest []Action
	for _, a := range del {
		if narinfoRE.MatchString(a.Key) {
			infos = append(infos, a)
		} else {
			rest = append(rest, a)
		}
	}
	for _, layer := range r.layers(infos) {
		p.batches = append(p.batches, chunks(layer)...)
	}
	p.batches = append(p.batches, chunks(rest)...)
	return p, nil
}

// DeleteBatch is the most keys one DeleteObjects request deletes (S3's
// limit).
const DeleteBatch = 1000

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

// list lists the bucket once.
func (r *run) list(ctx context.Context) error {
	r.objects = map[string]s3cache.ObjectInfo{}
	var bad []string
	var newest time.Time
	err := r.b.List(ctx, "", func(o s3cache.ObjectInfo) error {
		r.objects[o.Key] = o
		if o.LastModified.After(newest) {
			newest = o.LastModified
		}
		r.rep.Objects++
		r.rep.Bytes += o.Size
		switch {
		case strings.HasPrefix(o.Key, roots.Prefix):
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
		r.problem("unknown keys under %s: %s; move or delete them", roots.Prefix, strings.Join(bad, "; "))
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
	r.storeDir = storepath.DefaultDir()
	if _, ok := r.objects[CacheInfoKey]; ok {
		text, err := r.get(ctx, CacheInfoKey)
		if err != nil {
			return err
		}
		if dir := narinfo.CacheInfoValue(string(text), "StoreDir"); dir != "" {
			r.storeDir = dir
		}
	}
	return nil
}

// CacheInfoKey is the key of the cache's nix-cache-info.
const CacheInfoKey = "nix-cache-info"

func (r *run) get(ctx context.Context, key string) ([]byte, error) {
	r.gets.Add(1)
	data, err := s3cache.ReadSmall(ctx, r.b, key, 1<<28)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return data, nil
}

// retain applies the retention policy, reads the kept manifests (an
// unreadable one is a problem) and returns the expired ones as actions.
func (r *run) retain(ctx context.Context) ([]Action, error) {
	var expired []Action
	var kept []string
	keepAll := r.opts.KeepLast <= 0 && r.opts.KeepWithin <= 0
	for _, root := range r.index.Roots {
		r.rep.Roots++
		for i, m := range root.Manifests {
			r.rep.Manifests++
			age := r.now.Sub(m.Time)
			switch {
			case keepAll, root.Pinned, i < r.opts.KeepLast, r.opts.KeepWithin > 0 && age <= r.opts.KeepWithin:
				kept = append(kept, m.Key)
			default:
				expired = append(expired, Action{Op: OpExpire, Key: m.Key, Size: m.Size,
					Reason: fmt.Sprintf("root %s manifest #%d from %s is past retention (%s)", root.Name, i+1, m.Time.Format(time.RFC3339), r.policy())})
			}
		}
	}
	r.rep.Kept = len(kept)
	r.kept = kept
	r.manifests = make([]*roots.Manifest, len(kept))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Jobs)
	for i, key := range kept {
		g.Go(func() error {
			r.gets.Add(1)
			m, err := roots.Read(gctx, r.b, key)
			switch {
			case err == nil:
				r.manifests[i] = m
			case errors.Is(err, s3cache.ErrNotFound):
				r.problem("root manifest %s vanished while gc ran (roots rm beside gc?); run gc again", key)
			case errors.Is(err, roots.ErrInvalidManifest):
				r.problem("%v; fix or remove it (nixbucket roots rm)", err)
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return expired, nil
}

// keptRead is the number of kept manifests read.
func (r *run) keptRead() int {
	n := 0
	for _, m := range r.manifests {
		if m != nil {
			n++
		}
	}
	return n
}

func (r *run) policy() string {
	var p []string
	if r.opts.KeepLast > 0 {
		p = append(p, fmt.Sprintf("keep-last %d", r.opts.KeepLast))
	}
	if r.opts.KeepWithin > 0 {
		p = append(p, "keep-within "+r.opts.KeepWithin.String())
	}
	return strings.Join(p, ", ")
}

// readNarInfos learns every narinfo's NAR URL and references: from a
// kept manifest entry when the listed ETag is the MD5 the push recorded
// (the very text it wrote), else with a GET. A narinfo that does not
// parse is a problem.
func (r *run) readNarInfos(ctx context.Context) error {
	r.infos = map[string]*narinfo.NarInfo{}
	for _, m := range r.manifests {
		if m == nil {
			continue
		}
		for _, e := range m.Paths {
			o, ok := r.objects[e.NarInfo]
			if !ok || e.NarInfoMD5 == "" || e.NAR == "" || !strings.EqualFold(o.ETag, e.NarInfoMD5) {
				continue
			}
			r.infos[e.NarInfo[:32]] = &narinfo.NarInfo{StorePath: e.Path, URL: e.NAR, NarSize: e.NarSize, FileSize: e.FileSize, References: e.References}
		}
	}
	var keys []string
	for k := range r.objects {
		if narinfoRE.MatchString(k) {
			r.rep.NarInfos++
			if r.infos[k[:32]] == nil {
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
			data, err := r.get(gctx, key)
			if errors.Is(err, s3cache.ErrNotFound) {
				return nil // gone since the listing (another tool)
			}
			if err != nil {
				return err
			}
			ni, err := narinfo.ParseString(string(data), narinfo.WithStoreDir(r.storeDir))
			if err != nil {
				r.problem("parsing %s: %v; fix or delete it (nixbucket verify lists such faults)", key, err)
				return nil
			}
			mu.Lock()
			r.infos[key[:32]] = ni
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// oldNarInfos counts the narinfos older than the grace.
func (r *run) oldNarInfos() int {
	n := 0
	for h := range r.infos {
		if !r.young(r.objects[h+".narinfo"]) {
			n++
		}
	}
	return n
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
			h := e.NarInfo[:32]
			add(h)
			for _, ref := range e.References {
				add(ref[:32])
			}
			if ni := r.infos[h]; ni != nil && !slices.Equal(refHashes(ni.References), refHashes(e.References)) {
				r.rep.Mismatches++
				r.log.Warn("manifest and narinfo references differ", "path", e.Path)
			}
		}
	}
	for hash := range r.infos {
		if o := r.objects[hash+".narinfo"]; r.young(o) && !live[hash] {
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
			x.add(ref[:32])
		}
	}
	return x.set
}

func refHashes(refs []string) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		if len(r) >= 32 {
			out = append(out, r[:32])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// young reports whether o was written less than Grace ago.
func (r *run) young(o s3cache.ObjectInfo) bool { return r.now.Sub(o.LastModified) < r.opts.Grace }

// readCondemned reads the condemnation records (one that does not parse
// is a problem); it returns when each key was first condemned.
func (r *run) readCondemned(ctx context.Context) (map[string]time.Time, error) {
	since := map[string]time.Time{}
	for _, key := range r.records {
		data, err := r.get(ctx, key)
		if errors.Is(err, s3cache.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rec condemnedRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			r.problem("parsing %s: %v; delete it to restart the grace period", key, err)
			continue
		}
		for k, t := range rec.Keys {
			if s, ok := since[k]; !ok || t.Before(s) {
				since[k] = t
			}
		}
	}
	return since, nil
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
		if live[h] || !deletable(h+".narinfo") {
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
		switch {
		case narinfoRE.MatchString(key):
			reachable, survives = live[key[:32]], survive[key[:32]]
		case listingRE.MatchString(key):
			reachable, survives = live[key[:32]], survive[key[:32]]
		default: // nar/
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

// report fills the report's actions without doing them.
func (r *run) report(p *planned) {
	for _, b := range p.batches {
		r.done(b)
	}
	r.condemnActions(p.condemned)
	for _, u := range p.uploads {
		r.abortAction(u)
	}
}

// done records deleted actions.
func (r *run) done(as []Action) {
	for _, a := range as {
		r.rep.Actions = append(r.rep.Actions, a)
		r.rep.Deleted++
		r.rep.FreedBytes += a.Size
	}
}

func (r *run) condemnActions(condemned map[string]time.Time) {
	keys := make([]string, 0, len(condemned))
	for k := range condemned {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.rep.Actions = append(r.rep.Actions, Action{Op: OpCondemn, Key: k, Size: r.objects[k].Size,
			Reason: "unreachable; deletable from " + condemned[k].Add(r.opts.Grace).Format(time.RFC3339)})
	}
	r.rep.Condemned = len(condemned)
}

func (r *run) abortAction(u s3cache.Upload) {
	r.rep.Aborted++
	r.rep.Actions = append(r.rep.Actions, Action{Op: OpAbort, Key: u.Key,
		Reason: "unfinished multipart upload " + u.UploadID + " started " + u.Initiated.Format(time.RFC3339)})
}

// layers splits narinfo deletions into batches; every referrer of a
// narinfo (among the deleted) is in an earlier batch.
func (r *run) layers(infos []Action) [][]Action {
	byHash := map[string]Action{}
	for _, a := range infos {
		byHash[a.Key[:32]] = a
	}
	referrers := map[string]int{} // deleted referrers not yet deleted
	for h := range byHash {
		for _, ref := range refHashes(r.infos[h].References) {
			if _, ok := byHash[ref]; ok && ref != h {
				referrers[ref]++
			}
		}
	}
	var out [][]Action
	for len(byHash) > 0 {
		var layer []Action
		for h, a := range byHash {
			if referrers[h] == 0 {
				layer = append(layer, a)
			}
		}
		if len(layer) == 0 { // a cycle cannot happen in Nix; delete the rest together
			for _, a := range byHash {
				layer = append(layer, a)
			}
		}
		slices.SortFunc(layer, func(a, b Action) int { return cmp.Compare(a.Key, b.Key) })
		for _, a := range layer {
			h := a.Key[:32]
			delete(byHash, h)
			for _, ref := range refHashes(r.infos[h].References) {
				if ref != h {
					referrers[ref]--
				}
			}
		}
		out = append(out, layer)
	}
	return out
}

// sweep deletes batch by batch (checking the lock before each), records
// the condemned and aborts stale uploads.
func (r *run) sweep(ctx context.Context, p *planned) error {
	for _, b := range p.batches {
		if err := r.checkLock(ctx, "deleting"); err != nil {
			return err
		}
		keys := make([]string, len(b))
		for i, a := range b {
			keys[i] = a.Key
		}
		if err := r.b.Delete(ctx, keys...); err != nil {
			return fmt.Errorf("deleting %d objects: %w", len(keys), err)
		}
		r.done(b)
	}
	// Record the condemned, then drop the old records.
	if len(p.condemned) > 0 {
		rec := condemnedRecord{Created: r.now, Keys: p.condemned}
		data, _ := json.MarshalIndent(rec, "", " ")
		key := CondemnedPrefix + r.now.Format("20060102T150405.000000000Z") + ".json"
		if err := r.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "application/json"}); err != nil {
			return fmt.Errorf("recording condemned objects: %w", err)
		}
		r.records = slices.DeleteFunc(r.records, func(k string) bool { return k == key })
	}
	if len(r.records) > 0 {
		if err := r.b.Delete(ctx, r.records...); err != nil {
			return fmt.Errorf("deleting old condemnation records: %w", err)
		}
	}
	r.condemnActions(p.condemned)
	if mp, ok := r.b.(s3cache.Multiparter); ok && len(p.uploads) > 0 {
		if err := r.checkLock(ctx, "aborting uploads"); err != nil {
			return err
		}
		for _, u := range p.uploads {
			err := mp.AbortMultipartUpload(ctx, u.Key, u.UploadID)
			if err != nil && !errors.Is(err, s3cache.ErrNotFound) {
				return fmt.Errorf("aborting upload of %s: %w", u.Key, err)
			}
			r.abortAction(u)
		}
	}
	r.log.Debug("gc done", "deleted", r.rep.Deleted, "freed", r.rep.FreedBytes, "condemned", r.rep.Condemned)
	return nil
}

// checkLock makes sure the exclusive lock is still held before what.
func (r *run) checkLock(ctx context.Context, what string) error {
	if r.lock == nil {
		return nil
	}
	if err := r.lock.Check(ctx); err != nil {
		return fmt.Errorf("stopping before %s (%d objects deleted so far): %w", what, r.rep.Deleted, err)
	}
	return nil
}
