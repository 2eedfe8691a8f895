package push_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/s3cache"
)

func TestCacheInfo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		text string
		want push.CacheInfo
	}{
		{"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n", push.CacheInfo{StoreDir: "/nix/store", WantMassQuery: true, Priority: 40}},
		// What Nix itself writes.
		{"StoreDir: /nix/store\n", push.CacheInfo{StoreDir: "/nix/store"}},
		{"StoreDir: /gnu/store\r\nWantMassQuery: 0\r\nPriority: 10\r\nExtra: x\n", push.CacheInfo{StoreDir: "/gnu/store", Priority: 10}},
		{"Priority: high\nWantMassQuery: yes\n", push.CacheInfo{}},
	} {
		if got := push.ParseCacheInfo(tc.text); got != tc.want {
			t.Errorf("ParseCacheInfo(%q) = %+v, want %+v", tc.text, got, tc.want)
		}
	}

	ctx := context.Background()
	b := s3cache.NewMemBucket()
	want := push.CacheInfo{StoreDir: "/nix/store", WantMassQuery: false, Priority: 7}
	have, err := want.Ensure(ctx, b)
	if err != nil || have != want {
		t.Fatalf("Ensure on an empty cache = %+v, %v", have, err)
	}
	text, _ := s3cache.ReadSmall(ctx, b, layout.CacheInfoKey, 1<<10)
	if string(text) != "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 7\n" {
		t.Errorf("nix-cache-info written: %q", text)
	}
	// An existing one is left as it is, and returned.
	have, err = push.CacheInfo{StoreDir: "/nix/store", WantMassQuery: true, Priority: 40}.Ensure(ctx, b)
	if err != nil || have != want {
		t.Errorf("Ensure on a cache with nix-cache-info = %+v, %v; want %+v", have, err, want)
	}
	if _, err := (push.CacheInfo{StoreDir: "/gnu/store"}).Ensure(ctx, b); err == nil || !strings.Contains(err.Error(), "/gnu/store") {
		t.Errorf("Ensure for another store dir: %v", err)
	}
}

func FuzzParseCacheInfo(f *testing.F) {
	f.Add("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")
	f.Add("Priority: -3\n")
	f.Fuzz(func(t *testing.T, text string) {
		ci := push.ParseCacheInfo(text)
		if strings.ContainsAny(ci.StoreDir, "\n") {
			return // not a value String can write back
		}
		if again := push.ParseCacheInfo(ci.String()); again != ci {
			t.Fatalf("ParseCacheInfo(%q) = %+v, but its String parses to %+v", text, ci, again)
		}
	})
}
