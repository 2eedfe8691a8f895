package storepath_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/storepath"
)

const hash32 = "0c1m6jzk2h3yb9pfk0dwdr5zdm3lxmv4"

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"/nix/store/" + hash32 + "-hello-2.12", true},
		{"/nix/store/" + hash32 + "-a+b-c_d.e?f=g", true},
		{"/nix/store/" + hash32 + "-x.drv", true},
		{"/nix/store/" + hash32 + "-" + strings.Repeat("n", 211), true},
		{"/nix/store/" + hash32 + "-" + strings.Repeat("n", 212), false},
		{"/nix/store/" + hash32 + "-", false},
		{"/nix/store/" + hash32, false},
		{"/nix/store/" + hash32 + "_x", false},
		{"/nix/store/" + strings.Repeat("e", 32) + "-x", false}, // e, o, u, t are not nix32
		{"/nix/store/" + strings.ToUpper(hash32) + "-x", false},
		{"/nix/store/" + hash32 + "-a b", false},
		{"/nix/store/" + hash32 + "-a/b", false},
		{"/nix/store/" + hash32 + "-.", false},
		{"/nix/store/" + hash32 + "-..", false},
		{"/nix/store/" + hash32 + "-..-x", false},
		{"/nix/store/" + hash32 + "-.x", true},
		{"/nix/store/" + hash32 + "-x/", false},
		{"/nix/store2/" + hash32 + "-x", false},
		{"/nix/" + hash32 + "-x", false},
		{"nix/store/" + hash32 + "-x", false},
		{"", false},
	} {
		err := storepath.Check("/nix/store", tc.p)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
		if err != nil && !errors.Is(err, storepath.ErrInvalid) {
			t.Errorf("Check(%q) = %v, does not wrap ErrBadPath", tc.p, err)
		}
	}
	if err := storepath.Check("/custom/store", "/custom/store/"+hash32+"-x"); err != nil {
		t.Errorf("a custom store dir: %v", err)
	}
	p := "/nix/store/" + hash32 + "-hello-2.12"
	if storepath.HashPart(p) != hash32 || storepath.Name(p) != "hello-2.12" || storepath.Base(p) != hash32+"-hello-2.12" {
		t.Errorf("HashPart, Name, BaseName of %s = %s, %s, %s", p, storepath.HashPart(p), storepath.Name(p), storepath.Base(p))
	}
}

// TestResolve follows links into the store as Nix does, with
// `nix path-info ARG` as the oracle where Nix accepts the argument.

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/nix/store/" + hash32 + "-x", "/nix/store/" + hash32 + "-x", true},
		{"/nix//store/./" + hash32 + "-x/", "/nix/store/" + hash32 + "-x", true},
		{"/nix/store/" + hash32 + "-x/bin", "", false},
		{"nix/store/" + hash32 + "-x", "", false},
		{"/nix/store/" + hash32 + "-..", "", false},
	} {
		got, err := storepath.Parse("/nix/store", tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestIsHashPart(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{hash32, true},
		{hash32[:31], false},
		{hash32 + "0", false},
		{strings.Repeat("e", 32), false},
		{strings.ToUpper(hash32), false},
	} {
		if got := storepath.IsHashPart(tc.s); got != tc.ok {
			t.Errorf("IsHashPart(%q) = %v, want %v", tc.s, got, tc.ok)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("/nix/store", "/nix/store/"+hash32+"-x")
	f.Add("/nix/store", "/nix/store/"+hash32+"-..")
	f.Fuzz(func(t *testing.T, dir, p string) {
		err := storepath.Check(dir, p)
		if err != nil {
			if !errors.Is(err, storepath.ErrInvalid) {
				t.Fatalf("Check(%q, %q) = %v, not ErrInvalid", dir, p, err)
			}
			return
		}
		if storepath.Base(p) != p[len(dir)+1:] || !storepath.IsHashPart(storepath.HashPart(p)) {
			t.Fatalf("Check(%q, %q) passed, but Base %q, HashPart %q", dir, p, storepath.Base(p), storepath.HashPart(p))
		}
	})
}
