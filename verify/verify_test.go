package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/compression"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/nar"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// nixCache is a binary cache written by the real Nix (nix copy --to
// file://…, signed), the reference a sound cache is measured against.
type nixCache struct {
	dir   string
	key   *signing.SecretKey
	paths []string          // the closure copied
	lib   string            // an input-addressed path that app refers to
	app   string            // refers to lib
	infos map[string]string // narinfo key → text
}

func buildNixCache(t *testing.T) *nixCache {
	t.Helper()
	f := nixtest.Sample(t, 20, "verify")
	all := nixtest.Build(t, f, "all")
	lib := nixtest.Build(t, f, "lib")[0]
	app := nixtest.Build(t, f, "app")[0]
	key, err := signing.GenerateSecretKey("verify-test-1")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "sk")
	if err := os.WriteFile(keyFile, []byte(key.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &nixCache{dir: filepath.Join(t.TempDir(), "cache"), key: key, lib: lib, app: app, infos: map[string]string{}}
	c.paths = nixtest.Lines(t, "nix-store", "-qR", all[0])
	args := append([]string{"copy", "--to", "file://" + c.dir + "?secret-key=" + keyFile}, nixtest.Options...)
	nixtest.Run(t, "nix", append(args, all[0])...)
	matches, _ := filepath.Glob(filepath.Join(c.dir, "*.narinfo"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		c.infos[filepath.Base(m)] = string(b)
	}
	if len(c.infos) != len(c.paths) {
		t.Fatalf("nix copy wrote %d narinfos for %d paths", len(c.infos), len(c.paths))
	}
	return c
}

func infoKey(path string) string { return filepath.Base(path)[:32] + ".narinfo" }

// clone copies the cache directory for one test case to spoil.
func (c *nixCache) clone(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cache")
	if out, err := exec.Command("cp", "-a", c.dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dir
}

func (c *nixCache) info(t *testing.T, path string) *narinfo.NarInfo {
	t.Helper()
	ni, err := narinfo.ParseString(c.infos[infoKey(path)])
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

func check(t *testing.T, b s3cache.Bucket, opts verify.Options) *verify.Report {
	t.Helper()
	r, err := verify.Check(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return r
}

func fileBucket(t *testing.T, dir string) s3cache.Bucket {
	t.Helper()
	b, err := s3cache.NewFileBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// faultSet renders faults as sorted "kind key" strings, checking that each
// has a detail.
func faultSet(t *testing.T, faults []verify.Fault) []string {
	t.Helper()
	out := []string{}
	for _, f := range faults {
		if f.Detail == "" {
			t.Errorf("fault %s %s has no detail", f.Kind, f.Key)
		}
		out = append(out, f.Kind+" "+f.Key)
	}
	slices.Sort(out)
	return out
}

func mutateFile(t *testing.T, name string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheck checks a cache written by real Nix: clean as it is, then each
// kind of damage, one at a time, found and named.
func TestCheck(t *testing.T) {
	c := buildNixCache(t)
	trusted := signing.NewPublicKeys(c.key.PublicKey())
	lib, app := c.info(t, c.lib), c.info(t, c.app)
	libKey, appKey := infoKey(c.lib), infoKey(c.app)
	other, err := signing.GenerateSecretKey("other-1")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("clean", func(t *testing.T) {
		r := check(t, fileBucket(t, c.dir), verify.Options{Deep: true, TrustedKeys: trusted})
		if !r.OK() {
			t.Fatalf("faults in a cache Nix wrote: %v", r.Faults)
		}
		n := len(c.paths)
		if r.NarInfos != n || r.NARs != n || r.NARsChecked != n || r.Signed != n || r.OrphanNARs != 0 {
			t.Errorf("report %+v; want %d narinfos, NARs checked and signed, no orphans", r, n)
		}
		var narBytes uint64
		for _, text := range c.infos {
			ni, _ := narinfo.ParseString(text)
			narBytes += ni.NarSize
		}
		if r.NarBytes != narBytes {
			t.Errorf("NarBytes = %d, want the narinfos' total %d", r.NarBytes, narBytes)
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back verify.Report
		if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(&back, r) {
			t.Errorf("report does not survive JSON: %s (%v)", js, err)
		}
	})

	cases := []struct {
		name    string
		spoil   func(t *testing.T, dir string)
		shallow bool     // no Deep, no TrustedKeys
		want    []string // "kind key", sorted
	}{{
		name:  "nar deleted",
		spoil: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, lib.URL)) },
		want:  []string{"missing-nar " + libKey},
	}, {
		name: "nar grown",
		spoil: func(t *testing.T, dir string) {
			mutateFile(t, filepath.Join(dir, lib.URL), func(b []byte) []byte { return append(b, 0, 0, 0, 0) })
		},
		want: []string{"file-hash " + libKey, "nar-size " + libKey},
	}, {
		name: "nar byte flipped",
		spoil: func(t *testing.T, dir string) {
			mutateFile(t, filepath.Join(dir, lib.URL), func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
		},
		want: []string{"file-hash " + libKey, "nar-invalid " + libKey},
	}, {
		// Without Deep, only sizes are checked: the damage goes unseen.
		name: "nar byte flipped, shallow",
		spoil: func(t *testing.T, dir string) {
			mutateFile(t, filepath.Join(dir, lib.URL), func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
		},
		shallow: true,
		want:    []string{},
	}, {
		name:  "referenced narinfo deleted",
		spoil: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, libKey)) },
		want:  []string{"missing-reference " + appKey},
	}, {
		name: "narinfo garbled",
		spoil: func(t *testing.T, dir string) {
			mutateFile(t, filepath.Join(dir, libKey), func(b []byte) []byte { return []byte("StorePath " + string(b)) })
		},
		want: []string{"parse " + libKey},
	}, {
		name: "narinfo under another key",
		spoil: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "00000000000000000000000000000000.narinfo"), []byte(c.infos[libKey]), 0o644)
		},
		want: []string{"store-path 00000000000000000000000000000000.narinfo"},
	}, {
		name: "NarHash changed",
		spoil: func(t *testing.T, dir string) {
			ni := *lib
			ni.NarHash = app.NarHash
			os.WriteFile(filepath.Join(dir, libKey), []byte(ni.String()), 0o644)
		},
		want: []string{"bad-signature " + libKey, "nar-hash " + libKey},
	}, {
		name: "signature of another path",
		spoil: func(t *testing.T, dir string) {
			ni := *lib
			ni.Sigs = app.Sigs
			os.WriteFile(filepath.Join(dir, libKey), []byte(ni.String()), 0o644)
		},
		want: []string{"bad-signature " + libKey},
	}, {
		name: "signed by an untrusted key only",
		spoil: func(t *testing.T, dir string) {
			ni := *lib
			fp, _ := ni.Fingerprint()
			ni.Sigs = []string{other.Sign([]byte(fp))}
			os.WriteFile(filepath.Join(dir, libKey), []byte(ni.String()), 0o644)
		},
		want: []string{"unsigned " + libKey},
	}, {
		name: "not a NAR, hashes consistent",
		spoil: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, libKey), []byte(fakeNAR(t, dir, lib, c.key)), 0o644)
		},
		want: []string{"nar-invalid " + libKey},
	}, {
		name:  "nix-cache-info deleted",
		spoil: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "nix-cache-info")) },
		want:  []string{"cache-info nix-cache-info"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := c.clone(t)
			tc.spoil(t, dir)
			opts := verify.Options{Deep: true, TrustedKeys: trusted}
			if tc.shallow {
				opts = verify.Options{}
			}
			r := check(t, fileBucket(t, dir), opts)
			if got := faultSet(t, r.Faults); !slices.Equal(got, tc.want) {
				t.Errorf("faults %q, want %q\n%v", got, tc.want, r.Faults)
			}
		})
	}

	t.Run("untrusted keys", func(t *testing.T) {
		r := check(t, fileBucket(t, c.dir), verify.Options{TrustedKeys: signing.NewPublicKeys(other.PublicKey())})
		got := faultSet(t, r.Faults)
		if len(got) != len(c.paths) || r.Signed != 0 {
			t.Fatalf("%d faults, %d signed; want every one of %d paths unsigned", len(got), r.Signed, len(c.paths))
		}
		for _, f := range got {
			if !strings.HasPrefix(f, "unsigned ") {
				t.Errorf("fault %s, want unsigned", f)
			}
		}
	})

	t.Run("orphan nar", func(t *testing.T) {
		dir := c.clone(t)
		os.Remove(filepath.Join(dir, libKey))
		os.Remove(filepath.Join(dir, appKey))
		r := check(t, fileBucket(t, dir), verify.Options{})
		if r.OrphanNARs != 2 {
			t.Errorf("OrphanNARs = %d, want 2", r.OrphanNARs)
		}
		// all refers to app: the one fault.
		for _, f := range r.Faults {
			if f.Kind != verify.KindMissingReference || !strings.Contains(f.Detail, filepath.Base(c.app)) {
				t.Errorf("unexpected fault %v", f)
			}
		}
	})
}

// fakeNAR replaces the NAR of ni with an xz file of bytes that are not a
// NAR, and returns a narinfo for it whose hashes and sizes all match and
// that key signs.
func fakeNAR(t *testing.T, dir string, ni *narinfo.NarInfo, key *signing.SecretKey) string {
	t.Helper()
	junk := []byte("nix-archive-1 but not really\n")
	var buf bytes.Buffer
	w, err := compression.NewWriter(&buf, compression.XZ, compression.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(junk)
	w.Close()
	if err := os.WriteFile(filepath.Join(dir, ni.URL), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	file, narH := nar.NewHasher(), nar.NewHasher()
	file.Write(buf.Bytes())
	narH.Write(junk)
	out := *ni
	out.FileHash, out.FileSize = file.Hash(), file.Size()
	out.NarHash, out.NarSize = narH.Hash(), narH.Size()
	fp, err := out.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	out.Sigs = []string{key.Sign([]byte(fp))}
	return out.String()
}

// TestCheckS3 checks the same Nix-written cache once copied into each
// real S3 server, where listing, sizes and downloads come from S3.
func TestCheckS3(t *testing.T) {
	c := buildNixCache(t)
	trusted := signing.NewPublicKeys(c.key.PublicKey())
	for _, kind := range s3test.Servers() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			b := srv.Open(t, srv.Bucket)
			ctx := t.Context()
			err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(c.dir, p)
				return b.Put(ctx, filepath.ToSlash(rel), bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{})
			})
			if err != nil {
				t.Fatal(err)
			}
			r := check(t, b, verify.Options{Deep: true, TrustedKeys: trusted, Jobs: 3})
			if !r.OK() || r.NARsChecked != len(c.paths) || r.Signed != len(c.paths) {
				t.Fatalf("report %+v; want %d NARs checked and signed, no faults", r, len(c.paths))
			}
			lib := c.info(t, c.lib)
			if err := b.Delete(ctx, lib.URL); err != nil {
				t.Fatal(err)
			}
			r = check(t, b, verify.Options{Deep: true})
			if got, want := faultSet(t, r.Faults), []string{"missing-nar " + infoKey(c.lib)}; !slices.Equal(got, want) {
				t.Errorf("after deleting %s: faults %q, want %q", lib.URL, got, want)
			}
		})
	}
}

// FuzzCheck feeds Check a bucket holding one arbitrary narinfo and NAR
// object: it must never fail (the bucket does not) nor panic, and a
// report without faults must mean the narinfo parsed.
func FuzzCheck(f *testing.F) {
	data := []byte("nix-archive-1")
	f.Add("StorePath: /nix/store/00000000000000000000000000000000-x\nURL: nar/x.nar\nCompression: none\nNarHash: sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\nNarSize: 13\nReferences: \n", data)
	f.Add("StorePath: /nix/store/00000000000000000000000000000000-x\nURL: nar/x.nar\nCompression: xz\nNarHash: sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\nNarSize: 13\nReferences: 00000000000000000000000000000000-x 11111111111111111111111111111111-y\n", []byte("\xfd7zXZ\x00garbage"))
	f.Add("StorePath: /nix/store/00000000000000000000000000000000-x\nURL: nar/x.nar\nCompression: zstd\nFileSize: 3\nNarHash: sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\nNarSize: 13\nReferences: \n", []byte{0x28, 0xb5, 0x2f})
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, info string, nar []byte) {
		ctx := context.Background()
		b := s3cache.NewMemBucket()
		cacheInfo := "StoreDir: /nix/store\n"
		b.Put(ctx, "nix-cache-info", strings.NewReader(cacheInfo), int64(len(cacheInfo)), s3cache.PutOptions{})
		b.Put(ctx, "00000000000000000000000000000000.narinfo", strings.NewReader(info), int64(len(info)), s3cache.PutOptions{})
		b.Put(ctx, "nar/x.nar", bytes.NewReader(nar), int64(len(nar)), s3cache.PutOptions{})
		r, err := verify.Check(ctx, b, verify.Options{Deep: true, Jobs: 2})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if r.OK() {
			if _, err := narinfo.ParseString(info, narinfo.WithStoreDir("/nix/store")); err != nil {
				t.Errorf("no fault for a narinfo that does not parse: %v", err)
			}
		}
	})
}
