package verify_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/lock"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/verify"
)

// countingBucket counts the GETs of narinfos.
type countingBucket struct {
	s3cache.Bucket
	narinfoGets atomic.Int64
}

func (b *countingBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasSuffix(key, ".narinfo") {
		b.narinfoGets.Add(1)
	}
	return b.Bucket.Get(ctx, key)
}

// editManifest rewrites the bucket's only root manifest in place (same
// key) with f.
func editManifest(t *testing.T, b s3cache.Bucket, f func(*roots.Manifest)) {
	t.Helper()
	x, err := roots.List(t.Context(), b)
	if err != nil || len(x.Roots) != 1 || len(x.Roots[0].Manifests) != 1 {
		t.Fatalf("roots: %+v, %v; want one manifest", x, err)
	}
	key := x.Roots[0].Manifests[0].Key
	m, err := roots.Read(t.Context(), b, key)
	if err != nil {
		t.Fatal(err)
	}
	f(m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	putText(t, b, key, string(data))
}

// entry returns the manifest entry of path.
func entry(m *roots.Manifest, path string) *roots.Entry {
	for i := range m.Paths {
		if m.Paths[i].Path == path {
			return &m.Paths[i]
		}
	}
	return nil
}

// spoilSig changes the last character of a signature's base64 before its
// padding: still well-formed, no longer valid.
func spoilSig(s string) string {
	body := strings.TrimRight(s, "=")
	c := byte('A')
	if body[len(body)-2] == 'A' {
		c = 'B'
	}
	return body[:len(body)-2] + string(c) + s[len(body)-1:]
}

// TestCheckVouched checks a cache pushed with --root against a real S3
// server: the manifest vouches for every narinfo (no narinfo GET, even
// with trusted keys), and a fault in a vouched narinfo, or in one
// rewritten since the manifest, is still found, in the narinfo itself.
func TestCheckVouched(t *testing.T) {
	nixtest.Require(t)
	f := nixtest.Sample(t, 6, "vouch")
	app := nixtest.Build(t, f, "app")[0]
	st, err := store.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g, err := closure.Compute(t.Context(), st, []string{app}, closure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	paths := g.Paths()
	lib := ""
	for _, p := range paths {
		if p != app && strings.Contains(p, "lib") {
			lib = p
		}
	}
	if lib == "" {
		t.Fatalf("no lib path in the closure %v", paths)
	}
	key, err := signing.GenerateSecretKey("vouch-test-1")
	if err != nil {
		t.Fatal(err)
	}
	trusted := signing.NewPublicKeys(key.PublicKey())
	srv := s3test.Start(t, s3test.VersityGW)

	// pushed returns a new bucket holding the closure of app and its
	// manifest, as `push --root r` leaves it.
	pushed := func(t *testing.T) s3cache.Bucket {
		b := srv.Open(t, srv.NewBucket(t))
		_, err := push.Push(t.Context(), b, g, push.Options{
			Compression: "zstd", Keys: []*signing.SecretKey{key},
			Root: &push.RootOptions{Name: "r", TopLevel: []string{app}},
			Lock: &lock.Options{Command: "test push", Settle: 10 * time.Millisecond, Wait: time.Minute},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	libKey, appKey := infoKey(lib), infoKey(app)
	withSigs := verify.Options{TrustedKeys: trusted}

	for _, tc := range []struct {
		name   string
		opts   verify.Options
		spoil  func(t *testing.T, b s3cache.Bucket)
		faults []string
		gets   int // narinfo GETs
		signed int // -1: not checked
	}{
		{name: "sound", signed: -1},
		{name: "sound, signatures from the manifest", opts: withSigs, signed: len(paths)},
		{name: "deep reads every narinfo", opts: verify.Options{Deep: true, TrustedKeys: trusted}, gets: len(paths), signed: len(paths)},
		{
			name: "vouched narinfo without its NAR",
			spoil: func(t *testing.T, b s3cache.Bucket) {
				if err := b.Delete(t.Context(), readInfo(t, b, libKey).URL); err != nil {
					t.Fatal(err)
				}
			},
			faults: []string{"missing-nar " + libKey}, gets: 1, signed: -1,
		},
		{
			name: "narinfo rewritten since the manifest",
			spoil: func(t *testing.T, b s3cache.Bucket) {
				rewrite(t, b, appKey, func(text []byte) []byte {
					return []byte(strings.Replace(string(text), "References: ", "References: 00000000000000000000000000000000-gone ", 1))
				})
			},
			faults: []string{"missing-reference " + appKey}, gets: 1, signed: -1,
		},
		{
			name: "spoilt manifest signature, sound narinfo",
			opts: withSigs,
			spoil: func(t *testing.T, b s3cache.Bucket) {
				editManifest(t, b, func(m *roots.Manifest) { e := entry(m, lib); e.Sigs[0] = spoilSig(e.Sigs[0]) })
			},
			gets: 1, signed: len(paths),
		},
		{
			name: "spoilt signature in the manifest and the narinfo",
			opts: withSigs,
			spoil: func(t *testing.T, b s3cache.Bucket) {
				var text string
				rewrite(t, b, libKey, func(b []byte) []byte {
					ni, err := narinfo.ParseString(string(b))
					if err != nil {
						t.Fatal(err)
					}
					ni.Sigs[0] = spoilSig(ni.Sigs[0])
					text = ni.String()
					return []byte(text)
				})
				editManifest(t, b, func(m *roots.Manifest) {
					e := entry(m, lib)
					e.Sigs[0] = spoilSig(e.Sigs[0])
					e.NarInfoMD5 = md5Hex(text) // the manifest vouches for the spoilt text
				})
			},
			faults: []string{"bad-signature " + libKey}, gets: 1, signed: len(paths) - 1,
		},
		{
			name: "manifest of an older nixbucket, without signatures",
			opts: withSigs,
			spoil: func(t *testing.T, b s3cache.Bucket) {
				editManifest(t, b, func(m *roots.Manifest) {
					for i := range m.Paths {
						m.Paths[i].Sigs = nil
					}
				})
			},
			gets: len(paths), signed: len(paths),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := pushed(t)
			if tc.spoil != nil {
				tc.spoil(t, b)
			}
			cb := &countingBucket{Bucket: b}
			r := check(t, cb, tc.opts)
			if got, want := faultSet(t, r.Faults), append([]string{}, tc.faults...); !slices.Equal(got, want) {
				t.Errorf("faults %q, want %q", got, want)
			}
			if r.NarInfos != len(paths) {
				t.Errorf("checked %d narinfos, want %d", r.NarInfos, len(paths))
			}
			if got := int(cb.narinfoGets.Load()); got != tc.gets || r.NarInfoGets != tc.gets {
				t.Errorf("%d narinfo GETs (report: %d), want %d", got, r.NarInfoGets, tc.gets)
			}
			if tc.signed >= 0 && r.Signed != tc.signed {
				t.Errorf("%d signed, want %d", r.Signed, tc.signed)
			}
		})
	}
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
