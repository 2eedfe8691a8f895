package store_test

import (
	"context"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestDBDoesNotBlockNix builds a new path with nix-build while the database
// is open, mid-query and busy with readers: Nix must be able to register it,
// and the open store must then see it.
func TestDBDoesNotBlockNix(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	db, err := store.OpenDB(ctx, store.DBPath(), storepath.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Immutable() {
		t.Fatal("OpenDB fell back to immutable as root")
	}
	release, err := store.HoldRead(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	readers, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(readers)
	for range 2 {
		g.Go(func() error {
			for gctx.Err() == nil {
				if _, err := db.QueryPathInfo(gctx, f.top); err != nil && gctx.Err() == nil {
					return err
				}
			}
			return nil
		})
	}
	built := nixtest.Build(t, f.file, "fresh")
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("reading while nix-build ran: %v", err)
	}
	if len(built) != 1 {
		t.Fatalf("nix-build printed %q", built)
	}

	// Still holding the old snapshot, a new query must see the new path.
	info, err := db.QueryPathInfo(ctx, built[0])
	if err != nil {
		t.Fatalf("QueryPathInfo of the path just built: %v", err)
	}
	checkInfo(t, info, nixtest.PathInfos(t, built[0])[built[0]])
	if err := release(); err != nil {
		t.Fatal(err)
	}
}
