package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
)

// TestPathsSince builds a new path after reading the newest registration:
// PathsSince after it returns the output with its deriver (and the .drv),
// ids growing, and LastID moves past them.
func TestPathsSince(t *testing.T) {
	nixtest.Require(t)
	ctx := context.Background()
	before, err := store.LastID(ctx, store.DBPath())
	if err != nil || before <= 0 {
		t.Fatalf("LastID: %d, %v", before, err)
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	out := nixtest.Build(t, nixtest.WriteExpr(t, nixtest.Derivation("since", "echo "+hex.EncodeToString(nonce)+" > $out")))[0]
	drv := nixtest.Instantiate(t, nixtest.WriteExpr(t, nixtest.Derivation("since", "echo "+hex.EncodeToString(nonce)+" > $out")))[0]
	got, err := store.PathsSince(ctx, store.DBPath(), before, 1000)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(got, func(p store.NewPath) bool { return p.Path == out })
	if i < 0 || got[i].Deriver != drv {
		t.Fatalf("PathsSince(%d) = %+v, want %s built by %s", before, got, out, drv)
	}
	for j := 1; j < len(got); j++ {
		if got[j].ID <= got[j-1].ID {
			t.Errorf("ids not growing: %+v", got)
		}
	}
	after, err := store.LastID(ctx, store.DBPath())
	if err != nil || after < got[i].ID {
		t.Errorf("LastID after the build: %d, %v; want at least %d", after, err, got[i].ID)
	}
	if rest, err := store.PathsSince(ctx, store.DBPath(), got[len(got)-1].ID, 1000); err != nil || slices.ContainsFunc(rest, func(p store.NewPath) bool { return p.Path == out }) {
		t.Errorf("PathsSince past the build: %+v, %v", rest, err)
	}
}
