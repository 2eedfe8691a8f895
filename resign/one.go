package resign

import (
	"context"
	"errors"
	"fmt"
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

// one re-signs the narinfo at key: it reads it, decides what its
// signatures become, vouches for it if it gains one, and writes it back
// if they change. named, if not "", is what to report it by if it is not
// in the cache.
func (r *resigner) one(ctx context.Context, key, named string) error {
	body, err := s3cache.ReadSmall(ctx, r.b, key, 1<<24)
	if errors.Is(err, s3cache.ErrNotFound) {
		if named != "" {
			r.add(func(res *Result) { res.Missing = append(res.Missing, named) })
		} else {
			r.log.Debug("narinfo deleted since the listing", "key", key)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	r.add(func(res *Result) { res.NarInfos++ })
	ni, err := narinfo.ParseString(string(body), narinfo.WithStoreDir(r.storeDir))
	if err != nil {
		r.refuse(key, fmt.Sprintf("does not parse: %v", err))
		return nil
	}
	if hash, _ := layout.NarInfoHash(key); storepath.HashPart(ni.StorePath) != hash {
		r.refuse(key, fmt.Sprintf("its StorePath %s does not have the key's hash part", ni.StorePath))
		return nil
	}
	fp, err := ni.Fingerprint()
	if err != nil {
		r.refuse(ni.StorePath, err.Error())
		return nil
	}

	kept := slices.DeleteFunc(slices.Clone(ni.Sigs), func(s string) bool { return r.remove[sigName(s)] })
	removed := len(ni.Sigs) - len(kept)
	sign := r.lacksSignature(fp, kept)
	if !sign && removed == 0 {
		r.add(func(res *Result) { res.Unchanged++ })
		return nil
	}
	if sign {
		why, err := r.vouch(ctx, key, ni, fp)
		if err != nil {
			return err
		}
		if why != "" {
			r.refuse(ni.StorePath, why)
			return nil
		}
	}
	ni.Sigs = kept
	if sign {
		if err := push.Sign(ni, r.opts.Keys); err != nil {
			return err
		}
	}
	if !r.opts.DryRun {
		if r.lock != nil {
			if err := r.lock.Check(ctx); err != nil {
				return fmt.Errorf("before writing %s: %w", key, err)
			}
		}
		if err := push.PutNarInfo(ctx, r.b, ni); err != nil {
			return err
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
	return nil
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
