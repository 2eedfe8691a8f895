package resign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/storepath"
	"github.com/nixbucket/nixbucket/verify"
)

// one re-signs the narinfo at key (see try), again if it changed while
// it was being signed. named, if not "", is what to report it by if it is
// not in the cache.
func (r *resigner) one(ctx context.Context, key, named string) error {
	for range maxAttempts {
		again, err := r.try(ctx, key, named)
		if !again {
			return err
		}
		r.log.Debug("narinfo changed while being signed: again", "key", key)
	}
	return fmt.Errorf("%s changed %d times while being signed: another writer is rewriting it", key, maxAttempts)
}

// maxAttempts bounds the reads of a narinfo that keeps changing.
const maxAttempts = 3

// try reads the narinfo at key, decides what its signatures become,
// vouches for it if it gains one, and writes it back if they change,
// unless it changed since it was read (then again is true: another writer,
// e.g. verify --repair, rewrote it, and writing what was read would undo
// that).
func (r *resigner) try(ctx context.Context, key, named string) (again bool, err error) {
	body, etag, err := r.read(ctx, key)
	if errors.Is(err, s3cache.ErrNotFound) {
		if named != "" {
			r.add(func(res *Result) { res.Missing = append(res.Missing, named) })
		} else {
			r.log.Debug("narinfo deleted since the listing", "key", key)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.add(func(res *Result) { res.NarInfos++ })
	ni, err := narinfo.ParseString(string(body), narinfo.WithStoreDir(r.storeDir))
	if err != nil {
		r.refuse(key, fmt.Sprintf("does not parse: %v", err))
		return false, nil
	}
	if hash, _ := layout.NarInfoHash(key); storepath.HashPart(ni.StorePath) != hash {
		r.refuse(key, fmt.Sprintf("its StorePath %s does not have the key's hash part", ni.StorePath))
		return false, nil
	}
	fp, err := ni.Fingerprint()
	if err != nil {
		r.refuse(ni.StorePath, err.Error())
		return false, nil
	}

	kept := slices.DeleteFunc(slices.Clone(ni.Sigs), func(s string) bool { return r.remove[sigName(s)] })
	removed := len(ni.Sigs) - len(kept)
	sign := r.lacksSignature(fp, kept)
	if !sign && removed == 0 {
		r.add(func(res *Result) { res.Unchanged++ })
		return false, nil
	}
	if sign {
		why, err := r.vouch(ctx, key, ni, fp)
		if err != nil {
			return false, err
		}
		if why != "" {
			r.refuse(ni.StorePath, why)
			return false, nil
		}
	}
	ni.Sigs = kept
	if sign {
		if err := push.Sign(ni, r.opts.Keys); err != nil {
			return false, err
		}
	}
	if !r.opts.DryRun {
		if r.lock != nil {
			if err := r.lock.Check(ctx); err != nil {
				return false, fmt.Errorf("before writing %s: %w", key, err)
			}
		}
		if changed, err := r.changed(ctx, key, etag); err != nil || changed {
			r.add(func(res *Result) { res.NarInfos-- }) // counted when read again
			return err == nil, err
		}
		if err := push.PutNarInfo(ctx, r.b, ni); err != nil {
			return false, err
		}
		r.log.Debug("rewrote narinfo", "key", key, "signed", sign, "removed", removed)
	}
	r.add(func(res *Result) {
		res.Rewritten++
		res.RemovedSignatures += removed
		if sign {
			res.Signed++
		}
	})
	return false, nil
}

// read returns the narinfo text at key and its ETag ("" if the bucket
// gives none).
func (r *resigner) read(ctx context.Context, key string) ([]byte, string, error) {
	rc, info, err := s3cache.GetWithInfo(ctx, r.b, key)
	if err != nil {
		if errors.Is(err, s3cache.ErrNotFound) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("reading %s: %w", key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxNarInfo+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", key, err)
	}
	if len(body) > maxNarInfo {
		return nil, "", fmt.Errorf("reading %s: larger than %d bytes", key, maxNarInfo)
	}
	return body, info.ETag, nil
}

// maxNarInfo is the size of the largest narinfo read.
const maxNarInfo = 1 << 24

// changed reports whether the narinfo at key is no longer the one read
// with etag: rewritten or deleted since (a HEAD). Without an ETag, it
// cannot tell, and reports false.
func (r *resigner) changed(ctx context.Context, key, etag string) (bool, error) {
	if etag == "" {
		return false, nil
	}
	o, err := r.b.Stat(ctx, key)
	if errors.Is(err, s3cache.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking %s before writing it: %w", key, err)
	}
	return o.ETag != etag, nil
}

// lacksSignature reports whether some key of Options.Keys has no valid
// signature among sigs.
func (r *resigner) lacksSignature(fp string, sigs []string) bool {
	for _, k := range r.opts.Keys {
		pub := k.PublicKey()
		if !slices.ContainsFunc(sigs, func(s string) bool { return signing.Verify(pub, []byte(fp), s) }) {
			return true
		}
	}
	return false
}

// vouch returns "" when the narinfo can be signed: a trusted key signed it
// (before any removal), or, with Deep, its NAR has its hashes and sizes;
// else why not. The error is for a bucket that fails.
func (r *resigner) vouch(ctx context.Context, key string, ni *narinfo.NarInfo, fp string) (string, error) {
	n, verr := r.trusted.CountValid([]byte(fp), ni.Sigs)
	if n > 0 {
		return "", nil
	}
	why := r.sigProblem(ni, verr)
	if !r.opts.Deep {
		return why, nil
	}
	if err := r.nars.Acquire(ctx, 1); err != nil {
		return "", err
	}
	faults, err := verify.CheckNAR(ctx, r.b, key, ni)
	r.nars.Release(1)
	if err != nil {
		return "", err
	}
	r.add(func(res *Result) { res.NARsChecked++ })
	if len(faults) == 0 {
		return "", nil
	}
	details := make([]string, len(faults))
	for i, f := range faults {
		details[i] = f.Detail
	}
	return why + ", and its NAR does not match it: " + strings.Join(details, "; "), nil
}

// sigProblem says why no signature of ni vouches for it.
func (r *resigner) sigProblem(ni *narinfo.NarInfo, verr error) string {
	var trusted, others []string
	for _, s := range ni.Sigs {
		if _, ok := r.trusted[sigName(s)]; ok {
			trusted = append(trusted, sigName(s))
		} else {
			others = append(others, sigName(s))
		}
	}
	switch {
	case verr != nil || len(trusted) > 0:
		return "its signature by " + strings.Join(trusted, ", ") + " does not verify"
	case len(others) > 0:
		return "signed only by untrusted keys: " + strings.Join(others, ", ")
	default:
		return "it has no signature"
	}
}

// refuse lists a narinfo left alone, by path (or key), with the reason.
func (r *resigner) refuse(what, why string) {
	r.add(func(res *Result) {
		res.Unvouched = append(res.Unvouched, what)
		res.Reasons[what] = why
	})
}

// add changes the result under the lock.
func (r *resigner) add(f func(*Result)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.res)
}

// sigName is the key name of a signature "<name>:<base64>".
func sigName(sig string) string {
	name, _, _ := strings.Cut(sig, ":")
	return name
}
