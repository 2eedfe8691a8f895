package gc_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nixbucket/nixbucket/gc"
	"github.com/nixbucket/nixbucket/gc/lock"
	"github.com/nixbucket/nixbucket/gc/roots"
	"github.com/nixbucket/nixbucket/internal/s3test"
	"github.com/nixbucket/nixbucket/push"
	"github.com/nixbucket/nixbucket/signing"
	"github.com/nixbucket/nixbucket/verify"
)

// TestPushesBesideGC runs pushes of different and overlapping closures
// (some killed part-way) in loops beside gc runs with no grace at all, on
// a real server; after each round verify finds every narinfo with its NAR
// and its references, and at the end every root's newest manifest
// substitutes with real Nix.
func TestPushesBesideGC(t *testing.T) {
	f := buildFixture(t)
	srv := s3test.Start(t, s3test.MinIO)
	b := srv.Open(t, srv.Bucket)
	lockOpts := lock.Options{Settle: 20 * time.Millisecond, Wait: 2 * time.Minute}
	pushers := []struct {
		root string
		sets [][]string
	}{
		{"x", [][]string{{"appA"}, {"dagA"}}},
		{"y", [][]string{{"dagA", "libA"}, {"appB"}}},
		{"z", [][]string{{"dagB"}, {"appA", "appB"}}},
	}
	const rounds = 4
	deleted := 0
	for round := range rounds {
		var wg sync.WaitGroup
		for i, p := range pushers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 2 {
					names := p.sets[(round+j)%2]
					ctx, cancel := context.WithCancel(context.Background())
					killed := i == 2 && j == 1 // the last push of z is killed part-way
					if killed {
						time.AfterFunc(time.Duration(rand.IntN(400))*time.Millisecond, cancel)
					}
					var top []string
					for _, n := range names {
						top = append(top, f.paths[n])
					}
					_, err := push.Push(ctx, b, f.closureOf(t, names...), push.Options{
						Compression: "xz", Key: f.key, Jobs: 2,
						Root: &push.RootOptions{Name: p.root, TopLevel: top},
						Lock: &lockOpts,
					})
					cancel()
					if err != nil && !(killed && errors.Is(err, context.Canceled)) {
						t.Errorf("push %s %v: %v", p.root, names, err)
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				rep, err := gc.Run(context.Background(), b, gc.Options{KeepLast: 1, Grace: -1, Lock: &lockOpts})
				if err != nil {
					t.Errorf("gc: %v", err)
					return
				}
				deleted += rep.Deleted
			}
		}()
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		rep, err := verify.Check(context.Background(), b, verify.Options{TrustedKeys: signing.NewPublicKeys(f.key.PublicKey())})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("round %d: verify found faults: %v", round, rep.Faults)
		}
		t.Logf("round %d: %d narinfos, verify clean", round, rep.NarInfos)
	}
	if deleted == 0 {
		t.Fatal("gc never deleted anything: the test exercised no race")
	}
	// Every root's newest manifest still substitutes.
	x, err := roots.List(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range x.Roots {
		m, err := roots.Read(context.Background(), b, r.Manifests[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for n, p := range f.paths {
			for _, top := range m.TopLevel {
				if top == p {
					names = append(names, n)
				}
			}
		}
		f.assertSubstitutes(t, b, names...)
	}
}
