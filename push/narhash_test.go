package push_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/closure"
	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/nar"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestPushNarHashMismatch alters store paths on disk after Nix registered
// them, as a bad disk or a stray chmod u+w would: the same size with one
// byte changed (a 12 MiB NAR, so that its multipart upload is under way
// when the hash is found wrong at the end), or grown. The push fails
// naming the path; no narinfo is written for it or for the paths that
// refer to it, its NAR is not in the bucket, no multipart upload is left
// unfinished, and what was written verifies.
func TestPushNarHashMismatch(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	salt := s3test.RandomHex(6)
	expr := fmt.Sprintf(`let
  mk = name: script: derivation { inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    PATH = "/usr/bin:/bin"; SALT = %q; args = [ "-c" script ]; };
  dep = mk "dep" "mkdir $out; echo fine > $out/fine";
  big = mk "big" "mkdir $out; head -c 12582912 /dev/urandom > $out/blob; echo ${dep} > $out/dep";
  small = mk "small" "mkdir $out; echo small > $out/data; echo ${dep} > $out/dep";
in {
  bigTop = mk "big-top" "mkdir $out; echo ${big} > $out/ref";
  smallTop = mk "small-top" "mkdir $out; echo ${small} > $out/ref";
}`, salt)
	file := nixtest.WriteExpr(t, expr)
	tops := nixtest.Build(t, file, "bigTop", "smallTop")
	ctx := context.Background()
	s, err := store.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := s3test.Start(t, s3test.VersityGW)
	key := newKey(t, "narhash-1")

	for i, tc := range []struct {
		name      string
		file      string // in the altered path
		multipart bool   // whether its upload is multipart
		alter     func(*os.File) error
	}{
		{"one byte changed", "blob", true, func(f *os.File) error {
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, 6<<20); err != nil {
				return err
			}
			b[0] ^= 0xff
			_, err := f.WriteAt(b, 6<<20)
			return err
		}},
		{"grown", "data", false, func(f *os.File) error {
			_, err := f.WriteAt([]byte("small and grown\n"), 0)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := closure.Compute(ctx, s, []string{tops[i]}, closure.Options{})
			if err != nil {
				t.Fatal(err)
			}
			altered := ""
			for _, p := range g.Paths() {
				if strings.HasSuffix(p, "-big") || strings.HasSuffix(p, "-small") {
					altered = p
				}
			}
			if altered == "" || g.Len() != 3 {
				t.Fatalf("closure %v: want top, the path to alter and dep", g.Paths())
			}
			alterStorePath(t, filepath.Join(altered, tc.file), tc.alter)
			t.Cleanup(func() {
				// Leave the store as Nix believes it is: delete the altered
				// path and its referrer.
				nixtest.Run(t, "nix-store", "--delete", tops[i], altered)
			})

			proxy := s3test.NewFaultProxy(t, srv.Endpoint)
			u, err := s3cache.ParseURL("s3://" + srv.NewBucket(t) + "?endpoint=" + proxy.URL + "&region=" + s3test.Region)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s3cache.OpenS3(ctx, u, srv.Options())
			if err != nil {
				t.Fatal(err)
			}
			_, err = push.Push(ctx, b, g, push.Options{Keys: []*signing.SecretKey{key}, Jobs: 4})
			if err == nil {
				t.Fatalf("pushing a closure with %s altered on disk succeeded", altered)
			}
			t.Logf("push failed as it should: %v", err)
			if !errors.Is(err, nar.ErrMismatch) || !strings.Contains(err.Error(), altered) {
				t.Errorf("error %q does not wrap nar.ErrMismatch or does not name %s", err, altered)
			}
			have := narinfoHashes(t, b)
			for _, p := range []string{altered, tops[i]} {
				if have[storepath.HashPart(p)] {
					t.Errorf("%s has a narinfo after its NAR (or a reference's) failed the hash check", p)
				}
			}
			narKey := push.NarKey(g.Info(altered), "xz")
			if _, err := b.Stat(ctx, narKey); !errors.Is(err, s3cache.ErrNotFound) {
				t.Errorf("the NAR %s of the altered path is in the bucket: %v", narKey, err)
			}
			if tc.multipart {
				started, aborted := proxy.Count(isCreateMultipart), proxy.Count(isAbortMultipart)
				if started == 0 || aborted != started {
					t.Errorf("%d multipart uploads started, %d aborted; want the NAR's started and aborted", started, aborted)
				}
			}
			if n := unfinishedUploads(t, b); n != 0 {
				t.Errorf("%d multipart uploads left unfinished", n)
			}
			checkCache(t, b, key, "after the failed push")
		})
	}
}

func isAbortMultipart(r *http.Request) bool {
	return r.Method == http.MethodDelete && r.URL.Query().Has("uploadId")
}

// alterStorePath makes file (in a store path) writable, alters it and
// gives it back its mode (read-only).
func alterStorePath(t *testing.T, file string, alter func(*os.File) error) {
	t.Helper()
	dir := filepath.Dir(file)
	modes := map[string]os.FileMode{}
	for _, p := range []string{dir, file} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		modes[p] = fi.Mode().Perm()
		if err := os.Chmod(p, fi.Mode().Perm()|0o200); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := alter(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, dir} {
		if err := os.Chmod(p, modes[p]); err != nil {
			t.Fatal(err)
		}
	}
}
