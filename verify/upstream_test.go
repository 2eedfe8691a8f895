package verify_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/roots"
	"github.com/nixbucket/nixbucket/storepath"
	"github.com/nixbucket/nixbucket/verify"
)

// TestUpstreamReferences removes a path's narinfo from a cache Nix wrote,
// so its referrers' references are missing, and records it as left to
// upstream in each way a push does (an upstream record, a root
// manifest's upstream entry): the references are then counted, not
// faults, unless RequireComplete; a record that does not parse explains
// nothing.
func TestUpstreamReferences(t *testing.T) {
	c := buildNixCache(t)
	var referrers []string
	for key, text := range c.infos {
		if key != infoKey(c.lib) && strings.Contains(text, storepath.Base(c.lib)) {
			referrers = append(referrers, "missing-reference "+key)
		}
	}
	slices.Sort(referrers)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	record := func(version int) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			r := &roots.UpstreamRecord{Version: version, Created: now, StoreDir: "/nix/store",
				Paths: []roots.UpstreamPath{{Path: c.lib, Signers: []string{"cache.nixos.org-1"}}}}
			writeJSON(t, filepath.Join(dir, roots.UpstreamKey(now)), r)
		}
	}
	manifest := func(t *testing.T, dir string) {
		ni := c.info(t, c.lib)
		m := &roots.Manifest{Version: 1, Name: "main", Created: now, StoreDir: "/nix/store", TopLevel: []string{c.app},
			Paths: []roots.Entry{{Path: c.lib, NarInfo: infoKey(c.lib), NarHash: ni.NarHash.Format(nixhash.NixBase32, true), NarSize: ni.NarSize,
				References: []string{}, Upstream: true}}}
		writeJSON(t, filepath.Join(dir, roots.Key("main", now)), m)
	}
	for _, tc := range []struct {
		name     string
		record   func(t *testing.T, dir string)
		opts     verify.Options
		want     []string
		upstream int
	}{
		{"no record: missing", nil, verify.Options{}, referrers, 0},
		{"upstream record", record(1), verify.Options{}, nil, 1},
		{"upstream record, deep", record(1), verify.Options{Deep: true}, nil, 1},
		{"upstream record, require complete", record(1), verify.Options{RequireComplete: true}, referrers, 1},
		{"invalid record", record(2), verify.Options{}, referrers, 0},
		{"manifest entry", manifest, verify.Options{}, nil, 1},
		{"manifest entry, deep", manifest, verify.Options{Deep: true}, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := c.clone(t)
			if err := os.Remove(filepath.Join(dir, infoKey(c.lib))); err != nil {
				t.Fatal(err)
			}
			if tc.record != nil {
				tc.record(t, dir)
			}
			r := check(t, fileBucket(t, dir), tc.opts)
			if got := faultSet(t, r.Faults); !slices.Equal(got, tc.want) {
				t.Errorf("faults %v, want %v", got, tc.want)
			}
			if r.UpstreamReferences != tc.upstream {
				t.Errorf("UpstreamReferences = %d, want %d", r.UpstreamReferences, tc.upstream)
			}
		})
	}
}

// writeJSON writes v as JSON to file, making its directory.
func writeJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
