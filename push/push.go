package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/compression"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
)

// Options tune a push.
type Options struct {
	// Compression is xz (the default, layout.DefaultCompression), zstd or
	// none.
	Compression string
	// CompressionLevel is the codec's level as compression.Options.Level
	// takes it; 0 means the codec's default.
	CompressionLevel int
	// Keys each sign every narinfo written (one signature per key); none
	// writes unsigned narinfos.
	Keys []*signing.SecretKey
	// Jobs bounds the NARs uploaded at once; 0 means 8.
	Jobs int
	// MetaJobs bounds the small requests (HEAD, narinfo PUT) in flight;
	// 0 means 32.
	MetaJobs int
	// PartSize is the multipart part size; 0 lets the bucket choose.
	PartSize int64
	// DryRun finds what is missing and uploads nothing.
	DryRun bool
	// Priority is written to a new nix-cache-info; 0 means
	// layout.DefaultPriority.
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
	// SkipSignedBy names keys (cache.nixos.org-1) whose local signature
	// on a path the cache lacks makes the push leave it upstream: not
	// uploaded, yet a satisfied reference, and recorded as upstream
	// (upstream.go).
	SkipSignedBy []string
	// LocalStore, if set with SkipSignedBy, is asked for the references
	// outside the graph (a push without the closure) that the cache
	// lacks: one signed locally by a skipped key is left upstream too,
	// instead of failing the push.
	LocalStore store.Store
	// CacheInfo, if set, is a read of the cache's nix-cache-info started
	// earlier (ReadCacheInfo); Push checks it (and writes one if the cache
	// has none) instead of reading it again.
	CacheInfo *CacheInfoRead
	// Logs, after the narinfos are written, uploads the build log of each
	// path's derivation (its Deriver) that Nix kept locally and the cache
	// lacks, to log/<drv base name> (logs.go): for the paths pushed and
	// those the cache had, not those left upstream. A log that cannot be
	// read or uploaded is a warning, counted in Result.LogsFailed; it
	// never fails the push.
	Logs bool
	// LogDir is Nix's log directory, "" for LogDir() (NIX_LOG_DIR, else
	// /nix/var/log/nix).
	LogDir string
	// LogCompression is the Content-Encoding the logs are written with:
	// "" or none (plain text), zstd, br or gzip (CheckLogCompression);
	// the cache URL's log-compression.
	LogCompression string
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
	// Upstream is the number of paths left upstream (SkipSignedBy): not
	// uploaded, nor counted in Pushed or Skipped; with LocalStore, the
	// references outside the request left upstream count too.
	Upstream int `json:"upstream,omitempty"`
	// UpstreamNarBytes is the NAR size of the paths left upstream. Both
	// are absent from the JSON when none is, as before SkipSignedBy.
	UpstreamNarBytes uint64 `json:"upstreamNarBytes,omitempty"`
	// UpstreamRecord is the key of the upstream record written (a push
	// whose narinfos refer to paths left upstream), if any.
	UpstreamRecord string `json:"upstreamRecord,omitempty"`
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
	// Logs is the number of build logs uploaded (Options.Logs), LogBytes
	// their size as uploaded (compressed with log-compression, if set),
	// LogsPresent the number of local logs the cache already had, and
	// LogsFailed the number of local logs not uploaded (read or upload
	// errors, warned about). All four are absent from the JSON when zero.
	Logs        int    `json:"logs,omitempty"`
	LogBytes    uint64 `json:"logBytes,omitempty"`
	LogsPresent int    `json:"logsPresent,omitempty"`
	LogsFailed  int    `json:"logsFailed,omitempty"`
}

// Push uploads every path of g that the cache lacks. Paths of g may refer
// to paths outside g (a partial graph); those must already be in the cache.
//
// It makes a plan (what the cache lacks, and the order of the writes) and
// carries it out in an attempt. An attempt that finds, once it holds the
// lock, that the cache changed while it waited (errRestart) is followed
// by a second one, with a new plan, under the lock.
func Push(ctx context.Context, b s3cache.Bucket, g *closure.Graph, opts Options) (*Result, error) {
	start := time.Now()
	p, err := newPusher(b, g, opts)
	if err != nil {
		return nil, err
	}
	// nix-cache-info is checked (or written) while the plan is made: both
	// are needed before anything else is written. Its failure, the first
	// sign of a cache that does not answer, is the one reported.
	pctx, cancelPlan := context.WithCancel(ctx)
	defer cancelPlan()
	infoErr := make(chan error, 1)
	if opts.DryRun {
		infoErr <- nil
	} else {
		go func() {
			ci := CacheInfo{StoreDir: p.storeDir, WantMassQuery: true, Priority: p.priority}
			_, err := ci.EnsureFrom(ctx, b, opts.CacheInfo)
			if err != nil {
				cancelPlan()
			}
			infoErr <- err
		}()
	}
	pl, err := p.makePlan(pctx, opts.Listing)
	if ierr := <-infoErr; ierr != nil {
		return nil, ierr
	}
	if err != nil {
		return nil, err
	}
	a := p.newAttempt(pl, nil)
	// Writing narinfos needs the shared lock, so that no gc deletes what
	// they refer to. It is taken while the NARs upload (taking it costs a
	// settle pause and two listings): a NAR is safe without it, as gc
	// deletes nothing younger than its grace or rewritten since condemned.
	// The first narinfo written waits for it (enterLock). A push with
	// nothing to write (and no root to record) takes none, so a no-op push
	// costs no lock round trips.
	if opts.Lock != nil && !opts.DryRun && (len(pl.missing) > 0 || opts.Root != nil) {
		pending := startLock(ctx, b, *opts.Lock)
		defer pending.release()
		a.awaitLock(pending)
	}
	res, err := a.run(ctx)
	if errors.Is(err, errRestart) {
		// A gc ran, or paths vanished, while the NARs uploaded: start again
		// under the lock, which is held now.
		p.log.Info("the cache changed while the push waited for its lock; pushing again under the lock")
		if pl, err = p.makePlan(ctx, nil); err != nil {
			return nil, err
		}
		res, err = p.newAttempt(pl, a.lock).run(ctx)
	}
	if err != nil {
		return res, err
	}
	// Build logs come after the narinfos: they are not part of the
	// closure invariant, and a missing one fails nothing.
	if opts.Logs && !opts.DryRun {
		if err := p.pushLogs(ctx, pl, res); err != nil {
			return res, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// pusher is one push's configuration: the bucket, the graph and the
// options with their defaults filled in. It does not change while the
// push runs; what does is an attempt's.
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
}

func newPusher(b s3cache.Bucket, g *closure.Graph, opts Options) (*pusher, error) {
	p := &pusher{b: b, g: g, opts: opts, algo: opts.Compression, jobs: opts.Jobs, metaJobs: opts.MetaJobs, priority: opts.Priority, log: opts.Logger, counters: opts.Counters}
	if p.algo == "" {
		p.algo = layout.DefaultCompression
	}
	if err := compression.Check(p.algo); err != nil {
		return nil, err
	}
	if opts.Logs {
		if err := CheckLogCompression(opts.LogCompression); err != nil {
			return nil, fmt.Errorf("log-compression=%s: %w", opts.LogCompression, err)
		}
	}
	if p.jobs <= 0 {
		p.jobs = 8
	}
	if p.metaJobs <= 0 {
		p.metaJobs = 32
	}
	if p.priority == 0 {
		p.priority = layout.DefaultPriority
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
