package resign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
)

// Options tune Run.
type Options struct {
	// Keys each add their signature to every narinfo selected that lacks a
	// valid one and can be vouched for.
	Keys []*signing.SecretKey
	// Remove are key names whose signatures are dropped.
	Remove []string
	// TrustedKeys vouch for a narinfo that carries a valid signature by
	// one of them; the public halves of Keys do too.
	TrustedKeys signing.PublicKeys
	// Deep vouches for a narinfo whose NAR, downloaded and re-hashed, has
	// its FileHash, FileSize, NarHash and NarSize.
	Deep bool
	// Select chooses the narinfos.
	Select Selection
	// DryRun decides as Run would and writes nothing.
	DryRun bool
	// Jobs bounds the NARs downloaded at once (Deep); narinfos are read
	// and written 4×Jobs at a time. 0 means 8.
	Jobs int
	// Lock, if set, makes Run hold a shared cache lock while it reads and
	// writes (not with DryRun), checked before each narinfo written.
	Lock *lock.Options
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

// Result is what Run did; its JSON form is what `sign --json` prints.
type Result struct {
	// NarInfos is the number of narinfos read.
	NarInfos int `json:"narinfos"`
	// Signed is the number of narinfos that gained a signature.
	Signed int `json:"signed"`
	// Rewritten is the number of narinfos written (or, with DryRun, that
	// would be): Signed and those that only lost signatures.
	Rewritten int `json:"rewritten"`
	// Unchanged is the number of narinfos whose signatures were already
	// as asked, not rewritten.
	Unchanged int `json:"unchanged"`
	// RemovedSignatures is the number of signatures removed.
	RemovedSignatures int `json:"removedSignatures"`
	// NARsChecked is the number of NARs downloaded and re-hashed (Deep).
	NARsChecked int `json:"narsChecked"`
	// Unvouched lists, sorted, the narinfos left alone: those that would
	// have gained a signature but could not be vouched for (by store
	// path), and those that do not parse or whose StorePath is not their
	// key's (by key).
	Unvouched []string `json:"unvouched"`
	// Missing lists, sorted, the paths selected (by Selection.Paths or a
	// root's manifest) that have no narinfo in the cache.
	Missing []string `json:"missing"`
	// Manifests are the root manifests read (Selection.Roots).
	Manifests []string `json:"manifests,omitempty"`
	// DryRun reports that nothing was written.
	DryRun bool `json:"dryRun"`
	// Reasons says, for each of Unvouched, why.
	Reasons map[string]string `json:"-"`
}

// resigner is one Run's state.
type resigner struct {
	b        s3cache.Bucket
	opts     Options
	log      *slog.Logger
	trusted  signing.PublicKeys
	remove   map[string]bool
	storeDir string
	lock     *lock.Lock // nil without Options.Lock or with DryRun
	nars     *semaphore.Weighted

	mu  sync.Mutex
	res Result
}

// Run re-signs the narinfos of b that opts.Select chooses (see the package
// documentation). The error is for a run that could not be completed; what
// was unvouched or missing is in the result.
func Run(ctx context.Context, b s3cache.Bucket, opts Options) (*Result, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 8
	}
	r := &resigner{b: b, opts: opts, log: opts.Logger, remove: map[string]bool{}, nars: semaphore.NewWeighted(int64(opts.Jobs))}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, n := range opts.Remove {
		r.remove[n] = true
	}
	r.trusted = signing.PublicKeys{}
	for name, k := range opts.TrustedKeys {
		r.trusted[name] = k
	}
	for _, k := range opts.Keys {
		if _, ok := r.trusted[k.Name()]; !ok {
			r.trusted[k.Name()] = k.PublicKey()
		}
	}
	r.res = Result{Unvouched: []string{}, Missing: []string{}, DryRun: opts.DryRun, Reasons: map[string]string{}}

	if opts.Lock != nil && !opts.DryRun {
		l, err := lock.Acquire(ctx, b, lock.Shared, *opts.Lock)
		if err != nil {
			return nil, err
		}
		defer l.Release()
		r.lock = l
	}
	dir, err := readStoreDir(ctx, b)
	if err != nil {
		return nil, err
	}
	r.storeDir = dir

	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(4 * opts.Jobs)
	err = r.selected(gctx, func(key, named string) error {
		if err := gctx.Err(); err != nil {
			return err
		}
		eg.Go(func() error { return r.one(gctx, key, named) })
		return nil
	})
	if werr := eg.Wait(); werr != nil {
		return nil, werr
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(r.res.Unvouched)
	slices.Sort(r.res.Missing)
	return &r.res, nil
}

// check refuses options that make no sense.
func (o *Options) check() error {
	if len(o.Keys) == 0 && len(o.Remove) == 0 {
		return errors.New("resign: no key to sign with and no signature to remove")
	}
	for _, k := range o.Keys {
		if slices.Contains(o.Remove, k.Name()) {
			return fmt.Errorf("resign: key %s is both to sign with and to remove", k.Name())
		}
	}
	return o.Select.check()
}

// readStoreDir reads the StoreDir of nix-cache-info, storepath.DefaultDir()
// if there is none.
func readStoreDir(ctx context.Context, b s3cache.Bucket) (string, error) {
	body, err := s3cache.ReadSmall(ctx, b, layout.CacheInfoKey, 1<<16)
	if errors.Is(err, s3cache.ErrNotFound) {
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
