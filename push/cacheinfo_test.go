package push_test

import (
	"context"
	"errors"
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

// TestEnsureFrom checks that a read started earlier (ReadCacheInfo) is
// what EnsureFrom judges, without another read.
func TestEnsureFrom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := s3cache.NewMemBucket()
	early := push.ReadCacheInfo(ctx, b)
	if _, err := early.Wait(ctx); !errors.Is(err, s3cache.ErrNotFound) {
		t.Fatalf("reading the nix-cache-info of an empty cache: %v, want ErrNotFound", err)
	}
	want := push.CacheInfo{StoreDir: "/nix/store", WantMassQuery: true, Priority: 40}
	if have, err := want.EnsureFrom(ctx, b, early); err != nil || have != want {
		t.Fatalf("EnsureFrom a read of an empty cache = %+v, %v", have, err)
	}
	// A read after the write sees it, and it is left as it is.
	other := push.CacheInfo{StoreDir: "/nix/store", Priority: 10}
	if have, err := other.EnsureFrom(ctx, b, push.ReadCacheInfo(ctx, b)); err != nil || have != want {
		t.Errorf("EnsureFrom a read after the write = %+v, %v; want %+v", have, err, want)
	}
	if _, err := (push.CacheInfo{StoreDir: "/gnu/store"}).EnsureFrom(ctx, b, push.ReadCacheInfo(ctx, b)); err == nil {
		t.Errorf("EnsureFrom for another store dir succeeded")
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
