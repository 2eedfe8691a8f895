package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/internal/nixtest"
	"github.com/nixbucket/nixbucket/store"
	"github.com/nixbucket/nixbucket/storepath"
)

const hash32 = "0c1m6jzk2h3yb9pfk0dwdr5zdm3lxmv4"

func TestResolve(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	result := link("result", f.top)
	chain := link("chain", "result") // relative, to a link
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	outside := link("outside", plain)
	t.Chdir(dir)

	for _, tc := range []struct {
		name, arg string
		want      string // "" for an error
		nixAgrees bool   // `nix path-info arg` prints want
	}{
		{"store path", f.top, f.top, true},
		{"result link", result, f.top, true},
		{"relative link", "./result", f.top, true},
		{"bare relative link", "result", f.top, false}, // a flake reference to nix
		{"link to a link", chain, f.top, true},
		{"inside a store path", f.top + "/note", f.top, true},
		{"lexically into the store", f.top + "/../" + storepath.Base(f.dep), f.dep, true},
		{"through a result link", "result/note", f.top, false},
		{"outside the store", plain, "", true},
		{"link outside the store", outside, "", true},
		{"missing", filepath.Join(dir, "missing"), "", true},
		{"the store dir", storepath.DefaultDir(), "", true},
		{"bad store path", storepath.DefaultDir() + "/not-a-store-path/x", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.Resolve(storepath.DefaultDir(), tc.arg)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Resolve(%q) = %s, want an error", tc.arg, got)
				}
			} else if err != nil || got != tc.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %s", tc.arg, got, err, tc.want)
			}
			if !tc.nixAgrees {
				return
			}
			out, nixErr := nixtest.Output(t.Context(), nil, "nix", "path-info", tc.arg)
			if tc.want == "" {
				if nixErr == nil {
					t.Errorf("nix path-info %s succeeded (%s), Resolve fails: %v", tc.arg, out, err)
				}
			} else if strings.TrimSpace(string(out)) != tc.want {
				t.Errorf("nix path-info %s = %q (%v), Resolve = %s", tc.arg, out, nixErr, got)
			}
		})
	}
	if _, err := store.Resolve(storepath.DefaultDir(), plain); !errors.Is(err, storepath.ErrInvalid) || !strings.Contains(err.Error(), "not in the Nix store") {
		t.Errorf("Resolve outside the store: %v, want ErrBadPath saying so", err)
	}
}

// pathRe is a second statement of the rules CheckPath implements.
var pathRe = regexp.MustCompile(`^/nix/store/[0-9a-df-np-sv-z]{32}-[a-zA-Z0-9+\-._?=]{1,211}$`)

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{
		hash32 + "-hello", hash32 + "-..", hash32 + "-.-", hash32 + "-..-a", hash32 + "-a/b", "short",
		strings.Repeat("e", 32) + "-x", hash32 + "-" + strings.Repeat("n", 212), hash32 + "_x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		p := "/nix/store/" + base
		err := storepath.Check("/nix/store", p)
		name := storepath.Name(p)
		want := pathRe.MatchString(p) && name != "." && name != ".." &&
			!strings.HasPrefix(name, ".-") && !strings.HasPrefix(name, "..-")
		if (err == nil) != want {
			t.Fatalf("CheckPath(%q) = %v, the regexp says ok=%v", p, err, want)
		}
		if (storepath.CheckBase(base) == nil) != want {
			t.Fatalf("CheckBaseName(%q) disagrees with CheckPath", base)
		}
		if err == nil && (storepath.Base(p) != base || storepath.HashPart(p)+"-"+storepath.Name(p) != base) {
			t.Fatalf("BaseName/HashPart/Name of %q do not add up", p)
		}
	})
}

// FuzzResolve resolves arguments under the store directory, which involves
// no file system access: the result must be a valid store path that the
// cleaned argument starts with.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{hash32 + "-hello/bin/x", hash32 + "-hello/../x", "../..", "./" + hash32 + "-a//b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		arg := "/nix/store/" + rest
		clean := filepath.Clean(arg)
		if !strings.HasPrefix(clean, "/nix/store/") {
			return // outside the store: file system territory
		}
		got, err := store.Resolve("/nix/store", arg)
		if err != nil {
			if !errors.Is(err, storepath.ErrInvalid) {
				t.Fatalf("Resolve(%q): %v does not wrap ErrBadPath", arg, err)
			}
			return
		}
		if storepath.Check("/nix/store", got) != nil || (got != clean && !strings.HasPrefix(clean, got+"/")) {
			t.Fatalf("Resolve(%q) = %q", arg, got)
		}
	})
}
