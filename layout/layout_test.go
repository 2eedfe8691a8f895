package layout_test

import (
	"testing"

	"github.com/nixbucket/nixbucket/layout"
)

const h = "0c1m6jzk2h3yb9pfk0dwdr5zdm3lxmv4"

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		key      string
		kind     layout.Kind
		inLayout bool
		ctype    string
	}{
		{"nix-cache-info", layout.KindCacheInfo, true, "text/x-nix-cache-info"},
		{h + ".narinfo", layout.KindNarInfo, true, "text/x-nix-narinfo"},
		{h + ".ls", layout.KindListing, true, "application/json"},
		{"nar/" + h + ".nar.xz", layout.KindNAR, true, "application/x-nix-nar"},
		{"nar/a/b", layout.KindNAR, false, "application/x-nix-nar"},
		{"nar/", layout.KindNAR, false, "application/x-nix-nar"},
		{"log/" + h + "-x.drv", layout.KindLog, true, "text/plain; charset=utf-8"},
		{"realisations/sha256:" + h + "!out.doi", layout.KindRealisation, true, "application/json"},
		{"debuginfo/abcd", layout.KindDebugInfo, false, "application/json"},
		{"locks/shared-1.json", layout.KindLock, false, ""},
		{"roots/app/1.json", layout.KindRoot, false, ""},
		{"upstream/20260101T000000Z-ab.json", layout.KindUpstream, false, ""},
		{"stats/history.jsonl", layout.KindOther, false, ""},
		{"e" + h[1:] + ".narinfo", layout.KindOther, false, ""},
		{h + "0.narinfo", layout.KindOther, false, ""},
		{"x/" + h + ".narinfo", layout.KindOther, false, ""},
		{"releases/v1/x", layout.KindOther, false, ""},
	} {
		if got := layout.KindOf(tc.key); got != tc.kind {
			t.Errorf("KindOf(%q) = %q, want %q", tc.key, got, tc.kind)
		}
		if got := layout.InLayout(tc.key); got != tc.inLayout {
			t.Errorf("InLayout(%q) = %v, want %v", tc.key, got, tc.inLayout)
		}
		if got := layout.ContentType(tc.key); got != tc.ctype {
			t.Errorf("ContentType(%q) = %q, want %q", tc.key, got, tc.ctype)
		}
	}
}

func TestKeyFunctions(t *testing.T) {
	p := "/nix/store/" + h + "-hello"
	if got := layout.NarInfoKeyOf(p); got != h+".narinfo" {
		t.Errorf("NarInfoKeyOf = %q", got)
	}
	if got, ok := layout.NarInfoHash(layout.NarInfoKey(h)); !ok || got != h {
		t.Errorf("NarInfoHash(NarInfoKey) = %q, %v", got, ok)
	}
	if got, ok := layout.ListingHash(layout.ListingKey(h)); !ok || got != h {
		t.Errorf("ListingHash(ListingKey) = %q, %v", got, ok)
	}
	if got := layout.NarKey(h, ".xz"); got != "nar/"+h+".nar.xz" || !layout.IsNar(got) {
		t.Errorf("NarKey = %q", got)
	}
	if got := layout.LogKey("/nix/store/" + h + "-x.drv"); got != "log/"+h+"-x.drv" {
		t.Errorf("LogKey = %q", got)
	}
	for first, want := range map[string]bool{"nar": true, "roots": true, "upstream": true, "nix-cache-info": true, "x.narinfo": true, "x.ls": true, "releases": false, "narx": false} {
		if got := layout.Reserved(first); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", first, got, want)
		}
	}
}

func FuzzKindOf(f *testing.F) {
	for _, k := range []string{"nix-cache-info", h + ".narinfo", "nar/x", "log/", h + ".ls"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k := layout.KindOf(key)
		if h, ok := layout.NarInfoHash(key); ok && (k != layout.KindNarInfo || layout.NarInfoKey(h) != key) {
			t.Fatalf("narinfo key %q: kind %q, round trip %q", key, k, layout.NarInfoKey(h))
		}
		if layout.InLayout(key) && layout.ContentType(key) == "" {
			t.Fatalf("%q is in the layout but has no content type", key)
		}
	})
}
