package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/compression"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/nar"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// NarContentType is the media type Nix gives uploaded NARs.
const NarContentType = "application/x-nix-nar"

// Options tune a push.
type Options struct {
	// Compression is xz (the default), zstd or none.
	Compression string
	// CompressionLevel is the codec's level as compression.Options.Level
	// takes it; 0 means the codec's default.
	CompressionLevel int
	// Key signs every narinfo written; nil writes unsigned narinfos.
	Key *signing.SecretKey
	// Jobs bounds the NARs uploaded at once; 0 means 8.
	Jobs int
	// MetaJobs bounds the small requests (HEAD, narinfo PUT) in flight;
	// 0 means 32.
	MetaJobs int
	// PartSize is the multipart part size; 0 lets the bucket choose.
	PartSize int64
	// DryRun finds what is missing and uploads nothing.
	DryRun bool
	// Priority is written to a new nix-cache-info; 0 means 40.
	Priority int
	// Counters, if set, is updated as the push goes, for progress display.
	Counters *Counters
	// Logger receives debug and warning records; nil discards them.
	Logger *slog.Logger
	// Listing, if set, is a listing of the cache started earlier
	// (StartListing); a complete one replaces the presence check.
	Listing *Listing
	// Lock, if set, makes the push hold a shared cache lock (package
	// lock) while it writes, so that gc never deletes what the written
	// narinfos refer to. Presence is checked first without the lock (with
	// Listing, if given); when anything is to be written (or a root
	// recorded), the lock is taken while the NARs upload, and before the
	// first narinfo presence is checked again under it; if the lock had to
	// wait for a gc, or paths vanished, the push starts again under the
	// lock. A push with nothing to write takes no lock. The lock is checked
	// (lock.Lock.Check) before each narinfo is written and before the root
	// manifest: a push that lost it stops with an error wrapping
	// lock.ErrLost.
	Lock *lock.Options
	// Root, if set, records a root manifest (package roots) after a
	// successful push.
	Root *RootOptions
}

// Counters are live figures of a running push, safe to read concurrently.
type Counters struct {
	// Total is the number of paths to upload, known once the cache is queried.
	Total atomic.Int64
	// TotalBytes is the NAR size of the paths to upload.
	TotalBytes atomic.Int64
	// Done is the number of paths whose narinfo is written.
	Done atomic.Int64
	// NarBytes is the NAR bytes read so far.
	NarBytes atomic.Int64
	// FileBytes is the compressed bytes produced so far.
	FileBytes atomic.Int64
}

// Result summarises a push; its JSON form is what `push --json` prints.
type Result struct {
	// Paths is the number of store paths in the request (the closure).
	Paths int `json:"paths"`
	// Pushed is the number of paths uploaded (or, in a dry run, that would be).
	Pushed int `json:"pushed"`
	// Skipped is the number of paths the cache already had.
	Skipped int `json:"skipped"`
	// NarBytes is the uncompressed NAR size of the pushed paths.
	NarBytes uint64 `json:"narBytes"`
	// FileBytes is the compressed size uploaded.
	FileBytes uint64 `json:"fileBytes"`
	// Seconds is the wall time of the push.
	Seconds float64 `json:"seconds"`
	// Missing lists the paths pushed (or that a dry run would push), in
	// upload order.
	Missing []string `json:"missing,omitempty"`
	// Root is the key of the root manifest recorded, if any.
	Root string `json:"root,omitempty"`
}

// Push uploads every path of g that the cache lacks. Paths of g may refer
// to paths outside g (a partial graph); those must already be in the cache.
func Push(ctx context.Context, b s3cache.Bucket, g *closure.Graph, opts Options) (*Result, error) {
	start := time.Now()
	p, err := newPusher(b, g, opts)
	if err != nil {
		return nil, err
	}
	res := &Result{Paths: g.Len()}
	if !opts.DryRun {
		if err := EnsureCacheInfo(ctx, b, p.storeDir, p.priority); err != nil {
			return nil, err
		}
	}
	order := g.Sorted()
	missing, present, err := p.missing(ctx, order, opts.Listing)
	if err != nil {
		return nil, err
	}
	if err := p.checkOutside(ctx, missing, present); err != nil {
		return nil, err
	}
	// Writing narinfos needs the shared lock, so that no gc deletes what
	// they refer to. It is taken while the NARs upload (taking it costs a
	// settle pause and two listings): a NAR is safe without it, as gc
	// deletes nothing younger than its grace or rewritten since condemned.
	// The first narinfo written waits for it (enterLock). A push with
	// nothing to write (and no root to record) takes none, so a no-op push
	// costs no lock round trips.
	if opts.Lock != nil && !opts.DryRun && (len(missing) > 0 || opts.Root != nil) {
		pl := startLock(ctx, b, *opts.Lock)
		defer pl.release()
		var once sync.Once
		var gateErr error
		p.gate = func(ctx context.Context) error {
			once.Do(func() { gateErr = p.enterLock(ctx, pl, order, missing) })
			return gateErr
		}
		p.beforeNARs = pl.listed
	}
	err = p.push(ctx, res, order, missing, present)
	if errors.Is(err, errRestart) {
		// A gc ran, or paths vanished, while the NARs uploaded: start again
		// under the lock, which is held now.
		p.log.Info("the cache changed while the push waited for its lock; pushing again under the lock")
		p.gate, p.beforeNARs, p.written, p.opts.Listing = nil, nil, nil, nil
		p.counters.Done.Store(0)
		if missing, present, err = p.missing(ctx, order, nil); err != nil {
			return nil, err
		}
		if err := p.checkOutside(ctx, missing, present); err != nil {
			return nil, err
		}
		*res = Result{Paths: g.Len()}
		err = p.push(ctx, res, order, missing, present)
	}
	if err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// errRestart stops a push whose lock came too late (enterLock).
var errRestart = errors.New("the cache changed while the push waited for its lock")

// pendingLock is a shared lock being acquired in the background.
type pendingLock struct {
	done     chan struct{}
	listedCh chan struct{} // closed once Acquire has listed the locks
	cancel   context.CancelFunc
	l        *lock.Lock
	err      error
}

func startLock(ctx context.Context, b s3cache.Bucket, opts lock.Options) *pendingLock {
	ctx, cancel := context.WithCancel(ctx)
	pl := &pendingLock{done: make(chan struct{}), listedCh: make(chan struct{}), cancel: cancel}
	opts.Listed = func() { close(pl.listedCh) }
	go func() {
		defer close(pl.done)
		pl.l, pl.err = lock.Acquire(ctx, b, lock.Shared, opts)
	}()
	return pl
}

// listed waits until Acquire has first listed the locks: a NAR uploaded
// from then on cannot be deleted by a gc unless the lock had to wait for
// it (lock.Lock.Waited), and a gc listed before would have been seen.
func (pl *pendingLock) listed(ctx context.Context) error {
	select {
	case <-pl.listedCh:
		return nil
	case <-pl.done:
		if pl.err != nil {
			return pl.err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait returns the lock once acquired.
func (pl *pendingLock) wait(ctx context.Context) (*lock.Lock, error) {
	select {
	case <-pl.done:
		return pl.l, pl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release stops an acquisition still running and releases the lock if
// it was acquired.
func (pl *pendingLock) release() {
	pl.cancel()
	<-pl.done
	if pl.l != nil {
		pl.l.Release()
	}
}

// enterLock waits for the shared lock and checks, under it, that what the
// push found before still holds: the lock came without waiting for another
// (so no gc ran while the NARs uploaded unprotected: one would have been
// seen, as a lock or a waiting mark), every path then in the cache still
// is, and so are the references outside the push. Otherwise it returns
// errRestart: the push starts again under the lock.
func (p *pusher) enterLock(ctx context.Context, pl *pendingLock, order, missing []string) error {
	l, err := pl.wait(ctx)
	if err != nil {
		return err
	}
	p.lock = l
	p.opts.Listing = nil // from before the lock: checkOutside must look again
	if l.Waited() {
		return errRestart
	}
	now, present, err := p.missing(ctx, order, nil)
	if err != nil {
		return err
	}
	was := make(map[string]bool, len(missing))
	for _, m := range missing {
		was[m] = true
	}
	for _, m := range now {
		if !was[m] {
			return errRestart
		}
	}
	return p.checkOutside(ctx, missing, present)
}

// enter passes the lock gate, if any, before what.
func (p *pusher) enter(ctx context.Context, what string) error {
	if p.gate != nil {
		if err := p.gate(ctx); err != nil {
			return err
		}
	}
	return p.checkLock(ctx, what)
}

// push uploads missing (the paths of order the cache lacks; present are
// the hash parts it has) and records the root, filling in res.
func (p *pusher) push(ctx context.Context, res *Result, order, missing []string, present map[string]bool) error {
	res.Skipped = len(order) - len(missing)
	res.Pushed = len(missing)
	res.Missing = missing
	for _, m := range missing {
		res.NarBytes += p.g.Info(m).NarSize
	}
	c := p.counters
	c.Total.Store(int64(len(missing)))
	c.TotalBytes.Store(int64(res.NarBytes))
	// A root manifest records the NAR of every path: those the cache had
	// are read from their narinfos while the others upload.
	type presentRead struct {
		had map[string]presentInfo
		err error
	}
	var readPresent chan presentRead
	if p.opts.Root != nil && !p.opts.DryRun {
		rctx, cancel := context.WithCancel(ctx)
		readPresent = make(chan presentRead, 1)
		go func() {
			had, err := p.readPresent(rctx, order, present)
			readPresent <- presentRead{had, err}
		}()
		// On an early return, stop the reads and wait for them to end.
		defer func() {
			cancel()
			if readPresent != nil {
				<-readPresent
			}
		}()
	}
	if !p.opts.DryRun && len(missing) > 0 {
		fileBytes, err := p.upload(ctx, missing)
		res.FileBytes = fileBytes
		if err != nil {
			return err
		}
	}
	if readPresent != nil {
		r := <-readPresent
		readPresent = nil
		if err := r.err; err != nil {
			// Read before the lock was held: a gc may have deleted it since.
			if errors.Is(err, errVanished) && p.gate != nil {
				if err := p.gate(ctx); err != nil {
					return err
				}
				return errRestart
			}
			return err
		}
		p.had = r.had
		if err := p.enter(ctx, "recording root "+p.opts.Root.Name); err != nil {
			return err
		}
		key, err := p.recordRoot(ctx, p.opts.Root)
		if err != nil {
			return err
		}
		res.Root = key
	}
	return nil
}

// missing returns the paths of order (topologically sorted) whose narinfo
// the cache lacks, in that order, and the hash parts present.
func (p *pusher) missing(ctx context.Context, order []string, listing *Listing) ([]string, map[string]bool, error) {
	present, err := findPresent(ctx, p.b, order, p.metaJobs, p.log, listing)
	if err != nil {
		return nil, nil, err
	}
	var missing []string
	for _, path := range order {
		if !present[storepath.HashPart(path)] {
			missing = append(missing, path)
		}
	}
	return missing, present, nil
}

// pusher holds one push's settings.
type pusher struct {
	b        s3cache.Bucket
	g        *closure.Graph
	opts     Options
	algo     string
	storeDir string
	jobs     int
	metaJobs int
	priority int
	log      *slog.Logger
	counters *Counters
	lock     *lock.Lock                  // the shared lock held, or nil
	gate     func(context.Context) error // waits for the lock (enterLock), if any
	// beforeNARs, if set, is waited for before the first NAR upload
	// (pendingLock.listed).
	beforeNARs func(context.Context) error
	written    map[string]*narinfo.NarInfo // by path, after upload
	had        map[string]presentInfo      // by path: narinfos the cache had (readPresent)
}

// checkLock makes sure, before what, that the shared lock is still held:
// a push whose lock was removed (`nixbucket unlock --all`) or went stale
// may be running beside a gc, which could have deleted a path this push
// found present; writing on would publish a narinfo whose closure is
// incomplete. What was written so far is consistent.
func (p *pusher) checkLock(ctx context.Context, what string) error {
	if p.lock == nil {
		return nil
	}
	if err := p.lock.Check(ctx); err != nil {
		return fmt.Errorf("push stopped before %s: %w; what was written is consistent, run the push again", what, err)
	}
	return nil
}

func newPusher(b s3cache.Bucket, g *closure.Graph, opts Options) (*pusher, error) {
	p := &pusher{b: b, g: g, opts: opts, algo: opts.Compression, jobs: opts.Jobs, metaJobs: opts.MetaJobs, priority: opts.Priority, log: opts.Logger, counters: opts.Counters}
	if p.algo == "" {
		p.algo = compression.XZ
	}
	if err := compression.Check(p.algo); err != nil {
		return nil, err
	}
	if p.jobs <= 0 {
		p.jobs = 8
	}
	if p.metaJobs <= 0 {
		p.metaJobs = 32
	}
	if p.priority == 0 {
		p.priority = 40
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.counters == nil {
		p.counters = new(Counters)
	}
	if g == nil {
		return p, nil
	}
	for _, path := range g.Paths() {
		if dir := path[:strings.LastIndexByte(path, '/')]; p.storeDir == "" {
			p.storeDir = dir
		} else if dir != p.storeDir {
			return nil, fmt.Errorf("paths from two store directories: %s and %s", p.storeDir, dir)
		}
	}
	return p, nil
}

// checkOutside makes sure that every reference of a missing path is either
// in the push or already in the cache, so no narinfo is written whose
// closure is incomplete.
func (p *pusher) checkOutside(ctx context.Context, missing []string, present map[string]bool) error {
	var outside []string
	seen := map[string]bool{}
	for _, m := range missing {
		for _, r := range p.g.Info(m).References {
			if p.g.Info(r) == nil && !seen[r] {
				seen[r] = true
				outside = append(outside, r)
			}
		}
	}
	if len(outside) == 0 {
		return nil
	}
	slices.Sort(outside)
	have, err := findPresent(ctx, p.b, outside, p.metaJobs, p.log, p.opts.Listing)
	if err != nil {
		return err
	}
	for _, r := range outside {
		if !have[storepath.HashPart(r)] {
			return fmt.Errorf("%s is referenced by the paths pushed but is neither pushed nor in the cache; push its closure (drop --no-recursive)", r)
		}
	}
	return nil
}

// upload pushes the missing paths, given in topological order. NARs
// upload up to Jobs at a time; a path's narinfo is written as soon as its
// NAR is uploaded and the narinfos of its references (within the push)
// are written. Any failure stops new work; what was written stays
// consistent.
func (p *pusher) upload(ctx context.Context, missing []string) (uint64, error) {
	inPush := make(map[string]bool, len(missing))
	for _, m := range missing {
		inPush[m] = true
	}
	// pending[m] counts what m's narinfo waits for: its NAR and each
	// in-push reference's narinfo. referrers[r] lists who waits for r.
	pending := make(map[string]int, len(missing))
	referrers := make(map[string][]string)
	for _, m := range missing {
		pending[m] = 1
		for _, r := range p.g.Info(m).References {
			if r != m && inPush[r] {
				pending[m]++
				referrers[r] = append(referrers[r], m)
			}
		}
	}
	var (
		mu        sync.Mutex
		infos     = make(map[string]*narinfo.NarInfo, len(missing))
		fileBytes atomic.Uint64
	)
	eg, ctx := errgroup.WithContext(ctx)
	metaSlots := make(chan struct{}, p.metaJobs)
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
			if err := p.enter(ctx, "writing "+NarInfoKey(m)); err != nil {
				return err
			}
			if err := p.writeNarInfo(ctx, ni); err != nil {
				return err
			}
			p.counters.Done.Add(1)
			for _, q := range referrers[m] {
				release(q)
			}
			return nil
		})
	}
	release = func(m string) {
		mu.Lock()
		pending[m]--
		ready := pending[m] == 0
		mu.Unlock()
		if ready {
			commit(m)
		}
	}

	// NARs over bigNar start first, largest first, so the long uploads
	// overlap everything else (Nix 2.35 starts largest first too); the
	// rest go in topological order, so that narinfos, which must wait for
	// their references' narinfos, can be written while NARs still upload.
	byNarSize := slices.Clone(missing)
	slices.SortStableFunc(byNarSize, func(a, b string) int {
		sa, sb := p.g.Info(a).NarSize, p.g.Info(b).NarSize
		if sa > bigNar || sb > bigNar {
			return -cmpUint(sa, sb)
		}
		return 0
	})
	narSlots := make(chan struct{}, p.jobs)
	bigSlots := make(chan struct{}, bigJobs)
	eg.Go(func() error {
		if p.beforeNARs != nil {
			if err := p.beforeNARs(ctx); err != nil {
				return err
			}
		}
		for _, m := range byNarSize {
			slots := []chan struct{}{narSlots}
			if p.g.Info(m).NarSize > bigNar {
				slots = append(slots, bigSlots)
			}
			for _, s := range slots {
				select {
				case s <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			eg.Go(func() error {
				defer func() {
					for _, s := range slots {
						<-s
					}
				}()
				ni, err := p.uploadNAR(ctx, p.g.Info(m))
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
	err := eg.Wait()
	p.written = infos
	return fileBytes.Load(), err
}

// Large NARs hold several part buffers and compressor state each, so at
// most bigJobs NARs over bigNar bytes stream at once; the other Jobs slots
// keep small paths flowing. A large NAR already uses every core through
// parallel compression, so this costs little speed and keeps a push's
// peak memory under 200 MiB whatever the NAR sizes.
const (
	bigNar  = 16 << 20
	bigJobs = 1
	// narPartConcurrency is the number of parts of one NAR in flight.
	narPartConcurrency = 2
)

// LargeNAR is the NAR size over which an upload holds several part
// buffers and a parallel compressor's state: Push streams one such NAR at
// a time, and callers of UploadNAR should too, to keep within a push's
// memory.
const LargeNAR = bigNar

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NarKey is the bucket key of a NAR: nar/<nix32 NarHash>.nar<ext>. Keying
// by NarHash, not FileHash, fixes the URL before compressing; identical
// content still dedups.
func NarKey(info *store.PathInfo, algo string) string {
	return "nar/" + nixbase32.EncodeToString(info.NarHash.Digest()) + ".nar" + compression.Ext(algo)
}

// NarInfoKey is the bucket key of a path's narinfo: <hash part>.narinfo.
func NarInfoKey(path string) string { return storepath.HashPart(path) + ".narinfo" }

// UploadNAR uploads the NAR of one valid store path as Push uploads NARs
// (see uploadNAR), to NarKey(info, opts.Compression), replacing any object
// there, and returns the path's narinfo: unsigned, unwritten, with info's
// signatures. Of opts it reads Compression, CompressionLevel, PartSize,
// Counters and Logger; it takes no lock. When the files on disk do not
// match info's NarHash and NarSize, it fails with an error wrapping
// nar.ErrMismatch and the upload is abandoned: what the key held before
// stays.
func UploadNAR(ctx context.Context, b s3cache.Bucket, info *store.PathInfo, opts Options) (*narinfo.NarInfo, error) {
	p, err := newPusher(b, nil, opts)
	if err != nil {
		return nil, err
	}
	return p.uploadNAR(ctx, info)
}

// uploadNAR streams one path's NAR through the hash check and the
// compressor into the bucket, and returns its narinfo (unsigned, unwritten).
// If the NAR on disk does not match the store's NarHash/NarSize, the upload
// is aborted and nothing is left in the bucket.
func (p *pusher) uploadNAR(ctx context.Context, info *store.PathInfo) (*narinfo.NarInfo, error) {
	key := NarKey(info, p.algo)
	p.log.Debug("uploading nar", "path", info.Path, "key", key, "bytes", info.NarSize)
	pr, pw := io.Pipe()
	file := nar.NewHasher()
	done := make(chan error, 1)
	go func() {
		err := p.compressNAR(ctx, io.MultiWriter(file, pw), info)
		pw.CloseWithError(err) // nil: the upload sees EOF and completes
		done <- err
	}()
	slack := int64(info.NarSize/64) + 1<<16
	err := p.b.Put(ctx, key, pr, -1, s3cache.PutOptions{
		ContentType:  NarContentType,
		PartSize:     p.opts.PartSize,
		Concurrency:  narPartConcurrency,
		ExpectedSize: int64(info.NarSize) + slack,
	})
	pr.CloseWithError(errors.Join(err, errUploadStopped)) // unblock the producer if Put stopped early
	if perr := <-done; perr != nil && !errors.Is(perr, errUploadStopped) {
		return nil, fmt.Errorf("pushing %s: %w", info.Path, perr)
	}
	if err != nil {
		return nil, fmt.Errorf("uploading %s: %w", key, err)
	}
	return &narinfo.NarInfo{
		StorePath:   info.Path,
		URL:         key,
		Compression: p.algo,
		FileHash:    file.Hash(),
		FileSize:    file.Size(),
		NarHash:     info.NarHash,
		NarSize:     info.NarSize,
		References:  baseNames(info.References),
		Deriver:     storepath.Base(info.Deriver),
		Sigs:        slices.Clone(info.Signatures),
		CA:          info.CA,
	}, nil
}

var errUploadStopped = errors.New("upload stopped")

// compressNAR writes the compressed NAR of info to w, failing (before the
// compressor's end is written) if the NAR differs from the store's record.
func (p *pusher) compressNAR(ctx context.Context, w io.Writer, info *store.PathInfo) error {
	cw, err := compression.NewWriter(&countingWriter{w: w, n: &p.counters.FileBytes}, p.algo, compression.Options{SizeHint: int64(info.NarSize), Level: p.opts.CompressionLevel})
	if err != nil {
		return err
	}
	err = nar.VerifyPath(ctx, &countingWriter{w: cw, n: &p.counters.NarBytes}, info.Path, info.NarHash, info.NarSize)
	if err != nil {
		cw.Close()
		return err
	}
	return cw.Close()
}

// countingWriter adds the bytes written through it to a counter.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// writeNarInfo signs and writes a narinfo.
func (p *pusher) writeNarInfo(ctx context.Context, ni *narinfo.NarInfo) error {
	if k := p.opts.Key; k != nil {
		fp, err := ni.Fingerprint()
		if err != nil {
			return fmt.Errorf("signing %s: %w", ni.StorePath, err)
		}
		sig := k.Sign([]byte(fp))
		if !slices.Contains(ni.Sigs, sig) {
			ni.Sigs = append(ni.Sigs, sig)
			slices.Sort(ni.Sigs)
		}
	}
	return PutNarInfo(ctx, p.b, ni)
}

// PutNarInfo writes ni, as it is, at NarInfoKey(ni.StorePath).
func PutNarInfo(ctx context.Context, b s3cache.Bucket, ni *narinfo.NarInfo) error {
	text := ni.String()
	key := NarInfoKey(ni.StorePath)
	if err := b.Put(ctx, key, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{ContentType: layout.ContentType(key)}); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = storepath.Base(p)
	}
	return out
}
