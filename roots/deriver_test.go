package roots_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/s3cache"
)

// TestDeriverRoundTrip: a manifest's Derivers flag and its entries'
// Deriver survive Write and Read; a manifest without the flag (older
// versions) reads as not recording derivers, and one naming a deriver it
// may not is refused.
func TestDeriverRoundTrip(t *testing.T) {
	const (
		app = "/nix/store/0c9rly0dxgcn9z5qdvgm6pbb4r1j4h71-app"
		drv = "1c9rly0dxgcn9z5qdvgm6pbb4r1j4h71-app.drv"
		md5 = "0123456789abcdef0123456789abcdef"
	)
	entry := func(deriver, md5 string) roots.Entry {
		return roots.Entry{Path: app, NarInfo: "0c9rly0dxgcn9z5qdvgm6pbb4r1j4h71.narinfo", NarHash: "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
			NarSize: 120, NAR: "nar/x.nar", FileSize: 100, NarInfoMD5: md5, References: []string{}, Deriver: deriver}
	}
	for _, tc := range []struct {
		name     string
		derivers bool
		entry    roots.Entry
		wantErr  string // "" if Write and Read succeed
	}{
		{"deriver recorded", true, entry(drv, md5), ""},
		{"narinfo without a deriver", true, entry("", md5), ""},
		{"older manifest", false, entry("", md5), ""},
		{"deriver without the flag", false, entry(drv, md5), "does not record derivers"},
		{"invalid deriver", true, entry("../x.drv", md5), "invalid deriver"},
		{"deriver without the narinfo's MD5", true, entry(drv, ""), "no narinfo MD5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := s3cache.NewMemBucket()
			m := &roots.Manifest{Name: "main", Created: time.Now(), StoreDir: "/nix/store", TopLevel: []string{app},
				Paths: []roots.Entry{tc.entry}, Derivers: tc.derivers}
			key, err := roots.Write(ctx, b, m)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Write: %v; want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := roots.Read(ctx, b, key)
			if err != nil {
				t.Fatal(err)
			}
			if got.Derivers != tc.derivers || len(got.Paths) != 1 || got.Paths[0].Deriver != tc.entry.Deriver {
				t.Errorf("read derivers %v, entries %+v; want %v, deriver %q", got.Derivers, got.Paths, tc.derivers, tc.entry.Deriver)
			}
			text, err := s3cache.ReadSmall(ctx, b, key, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if has := strings.Contains(string(text), `"derivers"`); has != tc.derivers {
				t.Errorf("manifest text names derivers: %v, want %v:\n%s", has, tc.derivers, text)
			}
		})
	}
	// The manifests of older versions, with no such fields, still parse.
	if m, err := roots.Parse([]byte(good)); err != nil || m.Derivers || m.Paths[0].Deriver != "" {
		t.Errorf("older manifest: %+v, %v", m, err)
	}
}
