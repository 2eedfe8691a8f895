package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/s3cache"
	"github.com/nixbucket/nixbucket/signing"
)

// TestEncodedNarinfos rewrites every narinfo of a pushed closure
// compressed, as niks3 (zstd) and Nix's narinfo-compression store them:
// on MinIO with PutObject's Content-Encoding (zstd, xz, br, gzip in
// turn), and in a file:// cache as compressed files (what a sync of such
// a bucket leaves; Nix 2.8's file:// store writes narinfos plain whatever
// narinfo-compression says); and pushes one with narinfo-compression=zstd.
// gc --dry-run, verify, stats and serve then read them decoded: real Nix
// substitutes the closure through serve.
func TestEncodedNarinfos(t *testing.T) {
	t.Parallel()
	f := nixtest.Sample(t, 3, "cli-encoded")
	app := nixtest.Build(t, f, "app")[0]
	closure := nixtest.Lines(t, "nix-store", "-qR", app)
	key, _ := signing.GenerateSecretKey("cli-encoded-1")
	pub := key.PublicKey().String()
	srv := s3test.Start(t, s3test.MinIO)
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		url  string
		// encode rewrites the narinfo at key compressed with coding.
		encode func(t *testing.T, b s3cache.Bucket, key, coding string, text []byte)
	}{
		{"s3", srv.URL, func(t *testing.T, b s3cache.Bucket, key, coding string, text []byte) {
			data := s3test.Encode(t, coding, text)
			err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{ContentType: "text/x-nix-narinfo", ContentEncoding: coding})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"file", "file://" + filepath.Join(t.TempDir(), "cache"), nil},
		{"push narinfo-compression", srv.StoreURL(srv.NewBucket(t)) + "&narinfo-compression=zstd", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append(creds(srv), "NIXBUCKET_SECRET_KEY="+key.Encode())
			if code, _, stderr := runBin(t, env, "push", "--cache", tc.url, "--root", "app", app); code != 0 {
				t.Fatalf("push: exit %d: %s", code, stderr)
			}
			u, err := s3cache.ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			var b s3cache.Bucket
			encode := tc.encode
			if u.Scheme == s3cache.SchemeS3 {
				b = srv.Open(t, u.Bucket)
			} else {
				b, err = s3cache.NewFileBucket(u.Dir)
				if err != nil {
					t.Fatal(err)
				}
				encode = func(t *testing.T, _ s3cache.Bucket, key, coding string, text []byte) {
					if err := os.WriteFile(filepath.Join(u.Dir, key), s3test.Encode(t, coding, text), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, p := range closure {
				key := strings.TrimPrefix(p, "/nix/store/")[:32] + ".narinfo"
				if u.NarinfoCompression != "" {
					if info, err := b.Stat(ctx, key); err != nil || info.ContentEncoding != u.NarinfoCompression {
						t.Errorf("push wrote %s: %+v, %v; want Content-Encoding %s", key, info, err, u.NarinfoCompression)
					}
					continue
				}
				text, err := s3cache.ReadSmall(ctx, b, key, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				encode(t, b, key, s3test.Codings[i%len(s3test.Codings)], text)
			}

			if code, stdout, stderr := runBin(t, env, "gc", "--cache", tc.url, "--dry-run"); code != 0 {
				t.Errorf("gc --dry-run: exit %d: %s%s", code, stdout, stderr)
			}
			if code, stdout, stderr := runBin(t, env, "verify", "--cache", tc.url, "--trusted-public-key", pub); code != 0 {
				t.Errorf("verify: exit %d: %s%s", code, stdout, stderr)
			}
			code, stdout, stderr := runBin(t, env, "stats", "--cache", tc.url, "--json")
			var st struct {
				KnownPaths  int  `json:"knownPaths"`
				MissingNARs int  `json:"missingNars"`
				GCRefuses   bool `json:"gcRefuses"`
				Unaccounted struct {
					Objects int `json:"objects"`
				} `json:"unaccountedNars"`
			}
			if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil {
				t.Fatalf("stats --json: exit %d, %v: %s%s", code, err, stdout, stderr)
			}
			if st.KnownPaths != len(closure) || st.MissingNARs != 0 || st.GCRefuses || st.Unaccounted.Objects != 0 {
				t.Errorf("stats: %+v; want %d known paths, every NAR accounted for", st, len(closure))
			}

			s := startServe(t, env, "--cache", tc.url)
			root, err := nixtest.Substitute(t, s.base, pub, closure)
			if err != nil {
				t.Fatalf("nix could not substitute through nixbucket serve: %v", err)
			}
			nixtest.AssertInStore(t, root, closure)
		})
	}
}
