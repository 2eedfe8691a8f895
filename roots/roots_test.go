package roots_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/roots"
)

const good = `{"version":1,"name":"main","created":"2026-11-23T10:00:00Z","storeDir":"/nix/store",
 "topLevel":["/nix/store/0c9rly0dxgcn9z5qdvgm6pbb4r1j4h71-app"],
 "paths":[{"path":"/nix/store/0c9rly0dxgcn9z5qdvgm6pbb4r1j4h71-app","narinfo":"0c9rly0dxgcn9z5qdvgm6pbb4r1j4h71.narinfo",
  "narHash":"sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s","narSize":120,
  "references":["0c9rly0dxgcn9z5qdvgm6pbb4r1j4h71-app"]}]}`

func TestParse(t *testing.T) {
	m, err := roots.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "main" || len(m.Paths) != 1 || m.NarSize() != 120 {
		t.Fatalf("parsed %+v", m)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"version", `"version":1`, `"version":2`, "version 2"},
		{"name", `"name":"main"`, `"name":"../x"`, "invalid root name"},
		{"narinfo key", `"narinfo":"0c9r`, `"narinfo":"1c9r`, "narinfo key"},
		{"store dir", `"path":"/nix/store/0c9`, `"path":"/gnu/store/0c9`, "not in the store directory"},
		{"reference", `"references":["0c9`, `"references":["/nix`, "invalid reference"},
		{"truncated", `]}]}`, `]}`, "decoding"},
		{"no paths", `"paths":[{`, `"paths":[],"x":[{`, "no paths"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := roots.Parse([]byte(strings.Replace(good, tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v; want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	k := roots.Key("main", time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	ref, pinned, err := roots.ParseKey(k)
	if err != nil || pinned || ref.Name != "main" || !ref.Time.Equal(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("ParseKey(%s) = %+v, %v, %v", k, ref, pinned, err)
	}
	if _, pinned, err := roots.ParseKey("roots/main/pinned"); err != nil || !pinned {
		t.Fatalf("pin key: %v %v", pinned, err)
	}
	for _, bad := range []string{"roots/main/x.json", "roots/main/notes.txt", "roots/a/b/c.json", "roots/-x/20261123T100000Z-ab.json"} {
		if _, _, err := roots.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%s) accepted it", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1,"name":"a","paths":[{"path":"/nix/store/x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := roots.Parse(data)
		if err != nil {
			return
		}
		for _, e := range m.Paths {
			if !strings.HasPrefix(e.Path, m.StoreDir+"/") || e.NarInfo[:32] != e.Path[len(m.StoreDir)+1:][:32] {
				t.Fatalf("accepted inconsistent entry %+v", e)
			}
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add("roots/main/20261123T100000Z-0a1b2c3d.json")
	f.Add("roots/main/pinned")
	f.Fuzz(func(t *testing.T, key string) {
		ref, pinned, err := roots.ParseKey(key)
		if err == nil && !pinned && ref.Time.IsZero() {
			t.Fatalf("manifest key %q without a time", key)
		}
	})
}

func TestParseUpstreamEntry(t *testing.T) {
	up := strings.Replace(good, `"references":["0c9`, `"upstream":true,"references":["0c9`, 1)
	m, err := roots.Parse([]byte(up))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.UpstreamHashes(); len(got) != 1 || got[0] != "0c9rly0dxgcn9z5qdvgm6pbb4r1j4h71" {
		t.Fatalf("UpstreamHashes = %v", got)
	}
	if m, err := roots.Parse([]byte(good)); err != nil || len(m.UpstreamHashes()) != 0 {
		t.Fatalf("a manifest without upstream entries: %v, %v", m, err)
	}
	bad := strings.Replace(up, `"upstream":true`, `"upstream":true,"nar":"nar/x.nar.xz"`, 1)
	if _, err := roots.Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "left upstream") {
		t.Fatalf("Parse of an upstream entry naming a NAR: %v", err)
	}
}

func TestUpstreamRecord(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	k := roots.UpstreamKey(now)
	if got, err := roots.ParseUpstreamKey(k); err != nil || !got.Equal(now) {
		t.Fatalf("ParseUpstreamKey(%s) = %v, %v", k, got, err)
	}
	for _, bad := range []string{"upstream/x.json", "upstream/a/20261123T100000Z-ab.json", "roots/20261123T100000Z-ab.json", "upstream/20261123T100000Z-ab.txt"} {
		if _, err := roots.ParseUpstreamKey(bad); err == nil {
			t.Errorf("ParseUpstreamKey(%s) accepted it", bad)
		}
	}
	rec := `{"version":1,"created":"2026-11-23T10:00:00Z","storeDir":"/nix/store","paths":[{"path":"/nix/store/0c9rly0dxgcn9z5qdvgm6pbb4r1j4h71-glibc","signers":["cache.nixos.org-1"]}]}`
	if r, err := roots.ParseUpstream([]byte(rec)); err != nil || len(r.Paths) != 1 || r.Paths[0].Signers[0] != "cache.nixos.org-1" {
		t.Fatalf("ParseUpstream = %+v, %v", r, err)
	}
	for _, tc := range []struct{ from, to string }{
		{`"version":1`, `"version":2`},
		{`"storeDir":"/nix/store"`, `"storeDir":"nix"`},
		{`"path":"/nix/store/0c9`, `"path":"/gnu/store/0c9`},
	} {
		if _, err := roots.ParseUpstream([]byte(strings.Replace(rec, tc.from, tc.to, 1))); err == nil {
			t.Errorf("ParseUpstream accepted %s", tc.to)
		}
	}
}
