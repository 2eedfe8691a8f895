package verify_test

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/serve"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/verify"
)

// s3Copy copies the Nix-written cache into a new bucket of srv.
func (c *nixCache) s3Copy(t *testing.T, srv *s3test.Server) s3cache.Bucket {
	t.Helper()
	b := srv.Open(t, srv.NewBucket(t))
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.dir, p)
		return b.Put(t.Context(), filepath.ToSlash(rel), bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rewrite replaces the object at key with f of its bytes.
func rewrite(t *testing.T, b s3cache.Bucket, key string, f func([]byte) []byte) {
	t.Helper()
	data, err := s3cache.ReadSmall(t.Context(), b, key, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	data = f(data)
	if err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func putText(t *testing.T, b s3cache.Bucket, key, text string) {
	t.Helper()
	if err := b.Put(t.Context(), key, strings.NewReader(text), int64(len(text)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readInfo(t *testing.T, b s3cache.Bucket, key string) *narinfo.NarInfo {
	t.Helper()
	body, err := s3cache.ReadSmall(t.Context(), b, key, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ni, err := narinfo.ParseString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := store.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// keys lists the keys of b, sorted.
func keys(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	var out []string
	if err := b.List(t.Context(), "", func(o s3cache.ObjectInfo) error { out = append(out, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func repairKeys(rs []verify.Repair) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Key)
	}
	return out
}

// damage breaks the NARs of three paths of c in b, one way each: a byte
// overwritten in the middle, deleted, truncated to half. It returns their
// narinfo keys, sorted.
func (c *nixCache) damage(t *testing.T, b s3cache.Bucket) []string {
	t.Helper()
	var third string
	for _, p := range c.paths {
		if p != c.lib && p != c.app && c.info(t, p).URL != c.info(t, c.lib).URL && c.info(t, p).URL != c.info(t, c.app).URL {
			third = p
			break
		}
	}
	rewrite(t, b, c.info(t, c.lib).URL, func(d []byte) []byte {
		copy(d[len(d)/2:], "overwritten")
		return d
	})
	if err := b.Delete(t.Context(), c.info(t, c.app).URL); err != nil {
		t.Fatal(err)
	}
	rewrite(t, b, c.info(t, third).URL, func(d []byte) []byte { return d[:len(d)/2] })
	return slices.Sorted(slices.Values([]string{infoKey(c.lib), infoKey(c.app), infoKey(third)}))
}

// TestRepair damages the NARs of a cache Nix wrote, copied into each real
// S3 server, in the three ways a bucket loses them (bytes overwritten,
// object deleted, object truncated), and repairs them from the local
// store: every damaged narinfo is repaired, a second deep check finds
// nothing, the narinfos keep their signatures (which still verify under
// the trusted key), no lock is left behind, and real Nix, requiring
// signatures, substitutes the whole closure from the repaired bucket.
func TestRepair(t *testing.T) {
	c := buildNixCache(t)
	trusted := signing.NewPublicKeys(c.key.PublicKey())
	st := openStore(t)
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			b := c.s3Copy(t, srv)
			damaged := c.damage(t, b)

			r, err := verify.Check(t.Context(), b, verify.Options{Deep: true, Jobs: 3, Repair: &verify.RepairOptions{
				Store: st,
				Lock:  &lock.Options{Command: "verify-test"},
			}})
			if err != nil {
				t.Fatalf("Check with Repair: %v", err)
			}
			if r.OK() {
				t.Fatal("no fault found in the damaged cache")
			}
			if left := r.Unresolved(); len(left) != 0 || len(r.Unrepaired) != 0 {
				t.Fatalf("left %v, unrepaired %v", left, r.Unrepaired)
			}
			if got := repairKeys(r.Repaired); !slices.Equal(got, damaged) {
				t.Fatalf("repaired %q, want the damaged %q\n%v", got, damaged, r.Faults)
			}
			for _, rp := range r.Repaired {
				ni := readInfo(t, b, rp.Key)
				orig := c.info(t, ni.StorePath)
				want := "nar/" + nixbase32.EncodeToString(orig.NarHash.Digest()) + ".nar.xz"
				if rp.URL != want || ni.URL != want || ni.Compression != "xz" {
					t.Errorf("%s: repaired as %s (narinfo: %s, %s), want %s", rp.Key, rp.URL, ni.URL, ni.Compression, want)
				}
				if !slices.Equal(ni.Sigs, orig.Sigs) || ni.NarHash.Format(nixhash.NixBase32, true) != orig.NarHash.Format(nixhash.NixBase32, true) || !slices.Equal(ni.References, orig.References) || ni.Deriver != orig.Deriver {
					t.Errorf("%s: the repaired narinfo changed more than the file fields:\n%s\nwas\n%s", rp.Key, ni, orig)
				}
			}

			again := check(t, b, verify.Options{Deep: true, TrustedKeys: trusted})
			if !again.OK() || again.Signed != len(c.paths) || again.NARsChecked != len(c.paths) {
				t.Fatalf("after the repair: %+v", again)
			}
			// The overwritten and truncated objects are orphans now, for gc.
			if again.OrphanNARs != 2 {
				t.Errorf("OrphanNARs = %d after the repair, want the 2 damaged objects", again.OrphanNARs)
			}
			var locks []string
			b.List(t.Context(), lock.Prefix, func(o s3cache.ObjectInfo) error { locks = append(locks, o.Key); return nil })
			if len(locks) != 0 {
				t.Errorf("locks left after the repair: %q", locks)
			}

			web := httptest.NewServer(serve.Handler(b, nil))
			defer web.Close()
			root, err := nixtest.Substitute(t, web.URL, c.key.PublicKey().String(), c.paths)
			if err != nil {
				t.Fatalf("nix could not substitute the repaired closure: %v", err)
			}
			nixtest.AssertInStore(t, root, c.paths)
		})
	}
}

// TestRepairRefused has a repair meet what it must not fix: a narinfo of
// a path the local store lacks, and one whose NarHash is not the local
// path's. Both are listed with the reason and left as they were, beside a
// NAR it does repair; without a store, or while gc holds the exclusive
// lock, nothing is repaired.
func TestRepairRefused(t *testing.T) {
	c := buildNixCache(t)
	st := openStore(t)
	srv := s3test.Start(t, s3test.VersityGW)
	b := c.s3Copy(t, srv)
	lib, app := c.info(t, c.lib), c.info(t, c.app)

	// A path this store never had: its NAR is missing too.
	absent := *lib
	absentHash := "0000000000000000000000000000000a"
	absent.StorePath = filepath.Dir(lib.StorePath) + "/" + absentHash + "-absent"
	absent.URL = "nar/" + absentHash + ".nar.xz"
	absentKey := absentHash + ".narinfo"
	putText(t, b, absentKey, absent.String())
	// app's narinfo claims lib's NarHash: the NAR no longer matches, and
	// the local app does not either.
	differs := *app
	differs.NarHash, differs.NarSize = lib.NarHash, lib.NarSize
	putText(t, b, infoKey(c.app), differs.String())
	// lib's NAR deleted: this one is repaired.
	if err := b.Delete(t.Context(), lib.URL); err != nil {
		t.Fatal(err)
	}

	t.Run("no store", func(t *testing.T) {
		r, err := verify.Check(t.Context(), b, verify.Options{Deep: true, Repair: &verify.RepairOptions{NoStore: errors.New("no Nix store found")}})
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Sorted(slices.Values([]string{absentKey, infoKey(c.app), infoKey(c.lib)}))
		if got := repairKeys(r.Unrepaired); !slices.Equal(got, want) || len(r.Repaired) != 0 {
			t.Fatalf("unrepaired %q, repaired %v; want all of %q unrepaired", got, r.Repaired, want)
		}
		for _, u := range r.Unrepaired {
			if !strings.Contains(u.Reason, "no access to a local store: no Nix store found") {
				t.Errorf("%s: reason %q", u.Key, u.Reason)
			}
		}
		if len(r.Unresolved()) != len(r.Faults) {
			t.Errorf("%d of %d faults unresolved, want all", len(r.Unresolved()), len(r.Faults))
		}
	})

	t.Run("gc holds the lock", func(t *testing.T) {
		gc, err := lock.Acquire(t.Context(), b, lock.Exclusive, lock.Options{Command: "gc"})
		if err != nil {
			t.Fatal(err)
		}
		defer gc.Release()
		before := keys(t, b)
		r, err := verify.Check(t.Context(), b, verify.Options{Deep: true, Repair: &verify.RepairOptions{Store: st, Lock: &lock.Options{Command: "verify-test"}}})
		if !errors.Is(err, lock.ErrLocked) || r == nil || len(r.Repaired) != 0 {
			t.Fatalf("repair beside gc: %v, %+v; want ErrLocked and nothing repaired", err, r)
		}
		after := keys(t, b)
		after = slices.DeleteFunc(after, func(k string) bool { return strings.HasPrefix(k, lock.Prefix) })
		before = slices.DeleteFunc(before, func(k string) bool { return strings.HasPrefix(k, lock.Prefix) })
		if !slices.Equal(after, before) {
			t.Errorf("the repair wrote beside gc: keys %q, were %q", after, before)
		}
	})

	r, err := verify.Check(t.Context(), b, verify.Options{Deep: true, Repair: &verify.RepairOptions{Store: st, Lock: &lock.Options{Command: "verify-test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := repairKeys(r.Repaired); !slices.Equal(got, []string{infoKey(c.lib)}) {
		t.Errorf("repaired %q, want only %s", got, infoKey(c.lib))
	}
	reasons := map[string]string{absentKey: "not in the local store", infoKey(c.app): "the local path is "}
	if len(r.Unrepaired) != len(reasons) {
		t.Errorf("unrepaired %v, want %d", r.Unrepaired, len(reasons))
	}
	for _, u := range r.Unrepaired {
		if !strings.Contains(u.Reason, reasons[u.Key]) {
			t.Errorf("unrepaired %s: reason %q, want %q", u.Key, u.Reason, reasons[u.Key])
		}
	}
	var left []string
	for _, f := range r.Unresolved() {
		left = append(left, f.Kind+" "+f.Key)
	}
	slices.Sort(left)
	if want := []string{"missing-nar " + absentKey, "nar-hash " + infoKey(c.app)}; !slices.Equal(left, want) {
		t.Errorf("unresolved %q, want %q", left, want)
	}
	if got := readInfo(t, b, infoKey(c.app)).String(); got != differs.String() {
		t.Errorf("the refused narinfo was rewritten:\n%s", got)
	}
	again := check(t, b, verify.Options{Deep: true})
	if got := faultSet(t, again.Faults); !slices.Equal(got, left) {
		t.Errorf("after the repair: faults %q, want %q", got, left)
	}
}
