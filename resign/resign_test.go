package resign_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/resign"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
)

// fixture is a cache the real Nix wrote (nix copy --to file://, signed by
// key a), to be loaded into buckets of a real S3 server.
type fixture struct {
	srv     *s3test.Server
	a, b    *signing.SecretKey
	objects map[string][]byte // key → content
	paths   []string          // the closure copied
	lib     string            // a path of it, with references
	app     string            // refers to lib
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := nixtest.Sample(t, 4, "resign")
	app := nixtest.Build(t, f, "app")[0]
	lib := nixtest.Build(t, f, "lib")[0]
	a, _ := signing.GenerateSecretKey("resign-a-1")
	b, _ := signing.GenerateSecretKey("resign-b-1")
	keyFile := filepath.Join(t.TempDir(), "a.sec")
	if err := os.WriteFile(keyFile, []byte(a.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cache")
	nixtest.Run(t, "nix", append([]string{"copy", "--to", "file://" + dir + "?secret-key=" + keyFile, app}, nixtest.Options...)...)
	fx := &fixture{srv: s3test.Start(t, s3test.MinIO), a: a, b: b, objects: map[string][]byte{}, lib: lib, app: app,
		paths: nixtest.Lines(t, "nix-store", "-qR", app)}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		fx.objects[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// bucket loads the fixture into a new bucket, with change applied to the
// objects first.
func (fx *fixture) bucket(t *testing.T, change func(objs map[string][]byte)) s3cache.Bucket {
	t.Helper()
	objs := map[string][]byte{}
	for k, v := range fx.objects {
		objs[k] = v
	}
	if change != nil {
		change(objs)
	}
	b := fx.srv.Open(t, fx.srv.NewBucket(t))
	for k, v := range objs {
		if err := b.Put(context.Background(), k, bytes.NewReader(v), int64(len(v)), s3cache.PutOptions{ContentType: layout.ContentType(k)}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// info parses the narinfo of path in objs.
func info(t *testing.T, objs map[string][]byte, path string) *narinfo.NarInfo {
	t.Helper()
	ni, err := narinfo.ParseString(string(objs[layout.NarInfoKeyOf(path)]))
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

// put replaces the narinfo of ni's path in objs.
func put(objs map[string][]byte, ni *narinfo.NarInfo) {
	objs[layout.NarInfoKeyOf(ni.StorePath)] = []byte(ni.String())
}

// snapshot returns every object of b with its ETag.
func snapshot(t *testing.T, b s3cache.Bucket) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := b.List(context.Background(), "", func(o s3cache.ObjectInfo) error {
		out[o.Key] = o.ETag
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// validBy returns the names of the keys with a valid signature on the
// narinfo of path in b.
func validBy(t *testing.T, b s3cache.Bucket, path string, keys ...*signing.SecretKey) []string {
	t.Helper()
	text, err := s3cache.ReadSmall(context.Background(), b, layout.NarInfoKeyOf(path), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ni, err := narinfo.ParseString(string(text))
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := ni.Fingerprint()
	names := []string{}
	for _, k := range keys {
		n := 0
		for _, s := range ni.Sigs {
			if signing.Verify(k.PublicKey(), []byte(fp), s) {
				n++
			}
			if strings.HasPrefix(s, k.Name()+":") {
				n += 10 // a signature by the name: must be exactly one, valid
			}
		}
		if n == 11 {
			names = append(names, k.Name())
		} else if n != 0 {
			t.Errorf("%s: signatures %q: not exactly one valid by %s", path, ni.Sigs, k.Name())
		}
	}
	return names
}

func run(t *testing.T, b s3cache.Bucket, opts resign.Options) *resign.Result {
	t.Helper()
	res, err := resign.Run(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// TestHostileNarInfos: an attacker who can write narinfos writes one
// signed by a key of its own, one unsigned, and one whose signature by
// the trusted key a no longer verifies (its NarSize changed). Signing with
// b, trusting a, refuses exactly those three (left byte for byte as they
// were) and signs every other narinfo; a second run writes nothing; a dry
// run reports the same and writes nothing.
func TestHostileNarInfos(t *testing.T) {
	fx := newFixture(t)
	evil, _ := signing.GenerateSecretKey("evil-1")
	var forged, unsigned, tampered string
	var others []string
	for _, p := range fx.paths {
		switch {
		case p == fx.app:
			forged = p
		case p == fx.lib:
			unsigned = p
		case tampered == "":
			tampered = p
		default:
			others = append(others, p)
		}
	}
	hostile := func(objs map[string][]byte) {
		ni := info(t, objs, forged)
		fp, _ := ni.Fingerprint()
		ni.Sigs = []string{evil.Sign([]byte(fp))}
		put(objs, ni)
		ni = info(t, objs, unsigned)
		ni.Sigs = nil
		put(objs, ni)
		ni = info(t, objs, tampered)
		ni.NarSize++
		put(objs, ni)
	}
	opts := resign.Options{Keys: []*signing.SecretKey{fx.b}, TrustedKeys: signing.NewPublicKeys(fx.a.PublicKey()), Select: resign.Selection{All: true}}

	dry := fx.bucket(t, hostile)
	before := snapshot(t, dry)
	dryOpts := opts
	dryOpts.DryRun = true
	dr := run(t, dry, dryOpts)
	if after := snapshot(t, dry); !mapsEqual(before, after) {
		t.Errorf("a dry run changed the bucket")
	}

	b := fx.bucket(t, hostile)
	before = snapshot(t, b)
	res := run(t, b, opts)
	want := []string{forged, unsigned, tampered}
	slices.Sort(want)
	if !slices.Equal(res.Unvouched, want) {
		t.Errorf("unvouched %q, want %q", res.Unvouched, want)
	}
	for _, p := range want {
		if res.Reasons[p] == "" {
			t.Errorf("no reason given for %s", p)
		}
	}
	if res.NarInfos != len(fx.paths) || res.Signed != len(others) || res.Rewritten != len(others) || res.Unchanged != 0 {
		t.Errorf("result %+v; want %d narinfos, %d signed and rewritten", res, len(fx.paths), len(others))
	}
	after := snapshot(t, b)
	for _, p := range want {
		if k := layout.NarInfoKeyOf(p); after[k] != before[k] {
			t.Errorf("the hostile narinfo %s was rewritten", p)
		}
		if got := validBy(t, b, p, fx.b); len(got) != 0 {
			t.Errorf("the hostile narinfo %s is signed by %q", p, got)
		}
	}
	for _, p := range others {
		if got := validBy(t, b, p, fx.a, fx.b); !slices.Equal(got, []string{fx.a.Name(), fx.b.Name()}) {
			t.Errorf("%s has valid signatures by %q, want both keys", p, got)
		}
		k := layout.NarInfoKeyOf(p)
		if o, err := b.Stat(context.Background(), k); err != nil || o.ContentType != layout.ContentType(k) {
			t.Errorf("rewritten %s has Content-Type %q (%v), want %q", k, o.ContentType, err, layout.ContentType(k))
		}
	}
	if dr.Signed != res.Signed || dr.Rewritten != res.Rewritten || !slices.Equal(dr.Unvouched, res.Unvouched) || !dr.DryRun {
		t.Errorf("dry run %+v, real run %+v", dr, res)
	}

	again := run(t, b, opts)
	if again.Rewritten != 0 || again.Signed != 0 || again.Unchanged != len(others) || !slices.Equal(again.Unvouched, want) {
		t.Errorf("second run %+v; want nothing rewritten, %d unchanged", again, len(others))
	}
	if !mapsEqual(after, snapshot(t, b)) {
		t.Errorf("the second run changed the bucket")
	}
}

// TestDeep: with Deep, an unsigned narinfo whose NAR matches is signed
// after its NAR is downloaded and re-hashed; one pointing to another
// path's NAR is refused.
func TestDeep(t *testing.T) {
	fx := newFixture(t)
	var other string
	for _, p := range fx.paths {
		if p != fx.app && p != fx.lib {
			other = p
		}
	}
	b := fx.bucket(t, func(objs map[string][]byte) {
		ni := info(t, objs, fx.lib)
		ni.Sigs = nil
		put(objs, ni)
		ni = info(t, objs, fx.app)
		o := info(t, objs, other)
		ni.Sigs, ni.URL, ni.FileHash, ni.FileSize = nil, o.URL, o.FileHash, o.FileSize
		put(objs, ni)
	})
	shallow := run(t, b, resign.Options{Keys: []*signing.SecretKey{fx.b}, Select: resign.Selection{Paths: []string{fx.lib, fx.app}}, DryRun: true})
	if want := sorted(fx.lib, fx.app); !slices.Equal(shallow.Unvouched, want) || shallow.NARsChecked != 0 {
		t.Errorf("without Deep nor trusted keys: %+v, want %q unvouched", shallow, want)
	}
	res := run(t, b, resign.Options{Keys: []*signing.SecretKey{fx.b}, Deep: true, Select: resign.Selection{Paths: []string{fx.lib, fx.app}}})
	if !slices.Equal(res.Unvouched, []string{fx.app}) || res.Signed != 1 || res.NARsChecked != 2 {
		t.Errorf("deep: %+v; want lib signed, app refused, 2 NARs checked", res)
	}
	if got := validBy(t, b, fx.lib, fx.b); len(got) != 1 {
		t.Errorf("lib not signed after its NAR was re-hashed")
	}
	if !strings.Contains(res.Reasons[fx.app], "NAR") {
		t.Errorf("app refused for %q, want its NAR named", res.Reasons[fx.app])
	}
}

// TestRemoveAndSelect: removing a key's signatures needs no key to sign
// with nor vouching; a path not in the cache is listed missing.
func TestRemoveAndSelect(t *testing.T) {
	fx := newFixture(t)
	b := fx.bucket(t, nil)
	run(t, b, resign.Options{Keys: []*signing.SecretKey{fx.b}, TrustedKeys: signing.NewPublicKeys(fx.a.PublicKey()), Select: resign.Selection{All: true}})
	gone := "/nix/store/00000000000000000000000000000000-gone"
	res := run(t, b, resign.Options{Remove: []string{fx.a.Name()}, Select: resign.Selection{Paths: []string{fx.lib, storeHash(fx.app), gone}}})
	if res.Rewritten != 2 || res.RemovedSignatures != 2 || res.Signed != 0 || !slices.Equal(res.Missing, []string{gone}) || len(res.Unvouched) != 0 {
		t.Errorf("remove: %+v", res)
	}
	for _, p := range fx.paths {
		want := []string{fx.a.Name(), fx.b.Name()}
		if p == fx.lib || p == fx.app {
			want = want[1:]
		}
		if got := validBy(t, b, p, fx.a, fx.b); !slices.Equal(got, want) {
			t.Errorf("%s: valid signatures by %q, want %q", p, got, want)
		}
	}
	for _, bad := range []resign.Options{
		{Select: resign.Selection{All: true}},
		{Remove: []string{"x"}},
		{Remove: []string{"x"}, Select: resign.Selection{All: true, Paths: []string{fx.lib}}},
		{Keys: []*signing.SecretKey{fx.b}, Remove: []string{fx.b.Name()}, Select: resign.Selection{All: true}},
		{Remove: []string{"x"}, Select: resign.Selection{Paths: []string{"not-a-path"}}},
	} {
		if _, err := resign.Run(context.Background(), b, bad); err == nil {
			t.Errorf("Run(%+v) did not fail", bad)
		}
	}
}

func storeHash(p string) string { return filepath.Base(p)[:32] }

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// rewriteOnStat is a bucket that, at the first Stat of key, first writes
// text there: another writer (say verify --repair) rewriting the narinfo
// between Run's read and its write.
type rewriteOnStat struct {
	s3cache.Bucket
	t    *testing.T
	key  string
	text []byte
	once sync.Once
}

func (w *rewriteOnStat) GetWithInfo(ctx context.Context, key string) (io.ReadCloser, s3cache.ObjectInfo, error) {
	return s3cache.GetWithInfo(ctx, w.Bucket, key)
}

func (w *rewriteOnStat) Stat(ctx context.Context, key string) (s3cache.ObjectInfo, error) {
	if key == w.key {
		w.once.Do(func() {
			if err := w.Bucket.Put(ctx, key, bytes.NewReader(w.text), int64(len(w.text)), s3cache.PutOptions{}); err != nil {
				w.t.Error(err)
			}
		})
	}
	return w.Bucket.Stat(ctx, key)
}

// TestRewrittenMeanwhile: a narinfo rewritten by another writer after Run
// read it is read again, and the other writer's change is kept.
func TestRewrittenMeanwhile(t *testing.T) {
	fx := newFixture(t)
	b := fx.bucket(t, nil)
	ni := info(t, fx.objects, fx.lib)
	ni.Extra = append(ni.Extra, narinfo.Field{Key: "X-Repaired", Value: "yes"})
	w := &rewriteOnStat{Bucket: b, t: t, key: layout.NarInfoKeyOf(fx.lib), text: []byte(ni.String())}
	res := run(t, w, resign.Options{Keys: []*signing.SecretKey{fx.b}, TrustedKeys: signing.NewPublicKeys(fx.a.PublicKey()), Select: resign.Selection{All: true}})
	if res.NarInfos != len(fx.paths) || res.Signed != len(fx.paths) {
		t.Errorf("result %+v; want %d narinfos signed", res, len(fx.paths))
	}
	text, err := s3cache.ReadSmall(context.Background(), b, w.key, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "\nX-Repaired: yes\n") {
		t.Errorf("the other writer's change was undone:\n%s", text)
	}
	if got := validBy(t, b, fx.lib, fx.a, fx.b); len(got) != 2 {
		t.Errorf("the narinfo rewritten meanwhile has valid signatures by %q, want both keys", got)
	}
}
