package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"
	"golang.org/x/sync/errgroup"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

// TestQueryPathInfo compares every field both back ends return with
// `nix path-info --json` and `nix-store -q --references`.
func TestQueryPathInfo(t *testing.T) {
	f := getFixture(t)
	oracle := nixtest.PathInfos(t, f.valid...)
	if len(oracle) != len(f.valid) {
		t.Fatalf("nix path-info returned %d paths, want %d", len(oracle), len(f.valid))
	}
	stores := backends(t)
	got := map[string]map[string]*store.PathInfo{}
	for name, s := range stores {
		got[name] = map[string]*store.PathInfo{}
		for _, p := range f.valid {
			t.Run(name+"/"+storepath.Name(p), func(t *testing.T) {
				info, err := s.QueryPathInfo(context.Background(), p)
				if err != nil {
					t.Fatalf("QueryPathInfo: %v", err)
				}
				got[name][p] = info
				checkInfo(t, info, oracle[p])
				refs := nixtest.Lines(t, "nix-store", "-q", "--references", p)
				slices.Sort(refs)
				if !slices.Equal(info.References, refs) {
					t.Errorf("References = %q, nix-store -q --references says %q", info.References, refs)
				}
			})
		}
	}
	for _, p := range f.valid {
		if a, b := got["db"][p], got["daemon"][p]; a != nil && b != nil && !reflect.DeepEqual(a, b) {
			t.Errorf("%s: the back ends disagree:\ndb:     %s\ndaemon: %s", p, show(a), show(b))
		}
	}

	// What the fixture is for: make sure the interesting cases are there.
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"toFile is text content-addressed", strings.HasPrefix(oracle[f.note].CA, "text:sha256:")},
		{"a .drv is text content-addressed", strings.HasPrefix(oracle[f.topDrv].CA, "text:sha256:")},
		{"self refers to itself", slices.Contains(oracle[f.self].References, f.self)},
		{"top refers to dep and note", slices.Equal(oracle[f.top].References, sorted(f.dep, f.note))},
		{"dev refers to out", slices.Equal(oracle[f.dev].References, []string{f.multi})},
		{"outputs have a deriver", oracle[f.dev].Deriver == f.multDrv},
		{"built outputs are ultimate", oracle[f.top].Ultimate},
		{"signed has two signatures, sorted", len(f.sigs) == 2 && slices.IsSorted(f.sigs) &&
			strings.HasPrefix(f.sigs[0], "store-test-a-1:") && slices.Equal(oracle[f.signed].Signatures, f.sigs)},
		{"unsigned paths have no signature", len(oracle[f.top].Signatures) == 0},
	} {
		if !tc.ok {
			t.Errorf("fixture: want %s", tc.name)
		}
	}
}

// show formats a PathInfo for a failure message.
func show(i *store.PathInfo) string {
	c := *i
	c.NarHash = nil
	return fmt.Sprintf("%+v NarHash:%v", c, i.NarHash.Format(nixhash.NixBase32, true))
}

func sorted(ss ...string) []string {
	slices.Sort(ss)
	return ss
}

// checkInfo compares info with Nix's own account of the path.
func checkInfo(t *testing.T, info *store.PathInfo, want nixtest.PathInfo) {
	t.Helper()
	if want.Path == "" {
		t.Fatalf("nix path-info knows nothing of %s", info.Path)
	}
	wantHash, err := nixhash.ParseAny(want.NarHash, nil)
	if err != nil {
		t.Fatalf("nix path-info narHash %q: %v", want.NarHash, err)
	}
	if info.NarHash == nil || info.NarHash.Algo() != wantHash.Algo() || !bytes.Equal(info.NarHash.Digest(), wantHash.Digest()) {
		t.Errorf("NarHash = %v, want %s", info.NarHash, want.NarHash)
	}
	wantRefs := want.References
	if len(wantRefs) == 0 {
		wantRefs = nil
	}
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"Path", info.Path, want.Path},
		{"NarSize", info.NarSize, want.NarSize},
		{"References", info.References, wantRefs},
		{"Deriver", info.Deriver, want.Deriver},
		{"Signatures", info.Signatures, want.Signatures},
		{"CA", info.CA, want.CA},
		{"RegistrationTime", info.RegistrationTime.Unix(), want.RegistrationTime},
		{"Ultimate", info.Ultimate, want.Ultimate},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.field, c.got, c.want)
		}
	}
}

// invalidPaths are well-formed paths that are not valid: the output of a
// derivation never built, and a made-up one.
func invalidPaths(t *testing.T, f *fixture) []string {
	t.Helper()
	out := nixtest.Lines(t, "nix-store", "-q", "--outputs", f.unbuilt)
	if len(out) != 1 {
		t.Fatalf("nix-store -q --outputs %s = %q, want one path", f.unbuilt, out)
	}
	return []string{out[0], storepath.DefaultDir() + "/" + strings.Repeat("0", 32) + "-store-test-nothing"}
}

func TestQueryPathInfoNotValid(t *testing.T) {
	f := getFixture(t)
	invalid := invalidPaths(t, f)
	oracle := nixtest.PathInfos(t, invalid...)
	for name, s := range backends(t) {
		for _, p := range invalid {
			t.Run(name+"/"+storepath.Name(p), func(t *testing.T) {
				if v := oracle[p].Valid; v == nil || *v {
					t.Fatalf("nix path-info: %s is valid?", p)
				}
				info, err := s.QueryPathInfo(context.Background(), p)
				if !errors.Is(err, store.ErrNotValid) {
					t.Fatalf("QueryPathInfo(%s) = %v, %v; want ErrNotValid", p, info, err)
				}
			})
		}
		for _, p := range []string{"/tmp/x", storepath.DefaultDir() + "/short", f.dep + "/x", storepath.DefaultDir() + "/" + strings.Repeat("e", 32) + "-x"} {
			t.Run(name+"/malformed", func(t *testing.T) {
				_, err := s.QueryPathInfo(context.Background(), p)
				if !errors.Is(err, storepath.ErrInvalid) || errors.Is(err, store.ErrNotValid) {
					t.Errorf("QueryPathInfo(%q) error = %v, want ErrBadPath", p, err)
				}
			})
		}
	}
}

func TestQueryValidPaths(t *testing.T) {
	f := getFixture(t)
	invalid := invalidPaths(t, f)
	in := []string{f.dep, invalid[0], f.top, f.unbuilt, invalid[1], f.note, f.dep}
	// The oracle: nix-store --check-validity --print-invalid.
	bad := nixtest.Lines(t, "nix-store", append([]string{"--check-validity", "--print-invalid"}, in...)...)
	var want []string
	for _, p := range in {
		if !slices.Contains(bad, p) {
			want = append(want, p)
		}
	}
	if len(want) != 5 {
		t.Fatalf("oracle: want 5 valid of %q, nix-store says %q are invalid", in, bad)
	}
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name    string
				in, out []string
			}{
				{"mixed", in, want},
				{"none valid", invalid, nil},
				{"empty", nil, nil},
			} {
				got, err := s.QueryValidPaths(context.Background(), tc.in)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if !slices.Equal(got, tc.out) {
					t.Errorf("%s: QueryValidPaths = %q, want %q", tc.name, got, tc.out)
				}
			}
			if _, err := s.QueryValidPaths(context.Background(), []string{f.dep, "/tmp/x"}); !errors.Is(err, storepath.ErrInvalid) {
				t.Errorf("QueryValidPaths with a malformed path: err = %v, want ErrBadPath", err)
			}
		})
	}
}

func TestQueryDerivationOutputs(t *testing.T) {
	f := getFixture(t)
	for name, s := range backends(t) {
		for _, drv := range []string{f.topDrv, f.multDrv, f.unbuilt} {
			t.Run(name+"/"+storepath.Name(drv), func(t *testing.T) {
				outs, err := s.QueryDerivationOutputs(context.Background(), drv)
				if err != nil {
					t.Fatal(err)
				}
				want := nixtest.Lines(t, "nix-store", "-q", "--outputs", drv)
				var got []string
				for out, p := range outs {
					got = append(got, p)
					wantName := strings.TrimSuffix(storepath.Name(drv), ".drv")
					if out != "out" {
						wantName += "-" + out
					}
					if storepath.Name(p) != wantName {
						t.Errorf("output %s is %s, want a path named %s", out, p, wantName)
					}
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("outputs = %v, nix-store -q --outputs says %q", outs, want)
				}
			})
		}
		t.Run(name+"/multi", func(t *testing.T) {
			outs, err := s.QueryDerivationOutputs(context.Background(), f.multDrv)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]string{"out": f.multi, "dev": f.dev}; !reflect.DeepEqual(outs, want) {
				t.Errorf("outputs = %v, want %v", outs, want)
			}
		})
		t.Run(name+"/not a derivation", func(t *testing.T) {
			outs, err := s.QueryDerivationOutputs(context.Background(), f.dep)
			if err != nil || len(outs) != 0 {
				t.Errorf("QueryDerivationOutputs(%s) = %v, %v; want no outputs", f.dep, outs, err)
			}
		})
		t.Run(name+"/not valid", func(t *testing.T) {
			drv := storepath.DefaultDir() + "/" + strings.Repeat("1", 32) + "-nothing.drv"
			_, err := s.QueryDerivationOutputs(context.Background(), drv)
			if !errors.Is(err, store.ErrNotValid) {
				t.Errorf("QueryDerivationOutputs(%s) error = %v, want ErrNotValid", drv, err)
			}
		})
	}
}

// TestConcurrent runs many callers at once on each back end (run it with
// -race): every answer must equal the one a lone caller got.
func TestConcurrent(t *testing.T) {
	f := getFixture(t)
	invalid := invalidPaths(t, f)
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			want := map[string]*store.PathInfo{}
			for _, p := range f.valid {
				info, err := s.QueryPathInfo(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				want[p] = info
			}
			g, ctx := errgroup.WithContext(ctx)
			for w := range 16 {
				g.Go(func() error {
					r := rand.New(rand.NewPCG(uint64(w), 1))
					for range 40 {
						switch r.IntN(4) {
						case 0:
							p := invalid[r.IntN(len(invalid))]
							if _, err := s.QueryPathInfo(ctx, p); !errors.Is(err, store.ErrNotValid) {
								return fmt.Errorf("QueryPathInfo(%s): %v, want ErrNotValid", p, err)
							}
						case 1:
							got, err := s.QueryValidPaths(ctx, append([]string{invalid[0]}, f.valid...))
							if err != nil || !slices.Equal(got, f.valid) {
								return fmt.Errorf("QueryValidPaths = %q, %v", got, err)
							}
						default:
							p := f.valid[r.IntN(len(f.valid))]
							info, err := s.QueryPathInfo(ctx, p)
							if err != nil {
								return err
							}
							if !reflect.DeepEqual(info, want[p]) {
								return fmt.Errorf("%s: got %s, want %s", p, show(info), show(want[p]))
							}
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCanceled checks that a canceled call fails with the context's error
// and leaves the store usable.
func TestCanceled(t *testing.T) {
	f := getFixture(t)
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := s.QueryPathInfo(ctx, f.top); !errors.Is(err, context.Canceled) {
				t.Errorf("QueryPathInfo with a canceled context: err = %v, want context.Canceled", err)
			}
			if _, err := s.QueryPathInfo(context.Background(), f.top); err != nil {
				t.Errorf("QueryPathInfo after a cancel: %v", err)
			}
		})
	}
}

func BenchmarkQueryPathInfo(b *testing.B) {
	f := getFixture(b)
	for name, s := range backends(b) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.QueryPathInfo(context.Background(), f.top); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.QueryPathInfo(context.Background(), f.top); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
