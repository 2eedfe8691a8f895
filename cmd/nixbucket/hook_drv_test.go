package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/storepath"
)

// A derivation with two outputs, as Nix 2.8 writes it.
const twoOutputDrv = `Derive([("dev","/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-x-dev","",""),("out","/nix/store/2cn6wyr8lw0yyhv8m4ann6gc5h4zwnxs-x","","")],[],[],"x86_64-linux","/bin/sh",["-c","echo > $out; echo > $dev"],[("builder","/bin/sh"),("dev","/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-x-dev"),("name","x"),("out","/nix/store/2cn6wyr8lw0yyhv8m4ann6gc5h4zwnxs-x"),("outputs","out dev"),("system","x86_64-linux")])`

// TestParseDrvOutputs checks the outputs read from a derivation, in output
// name order, and that what is no derivation is an error.
func TestParseDrvOutputs(t *testing.T) {
	for _, tc := range []struct {
		name, drv string
		want      []string
		err       string
	}{
		{"two outputs", twoOutputDrv, []string{"/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-x-dev", "/nix/store/2cn6wyr8lw0yyhv8m4ann6gc5h4zwnxs-x"}, ""},
		{"empty", "", nil, "too short"},
		{"not ATerm", "{\"outputs\": {}}", nil, "prefix"},
		{"truncated", twoOutputDrv[:100], nil, ""},
		{"content-addressed output", strings.Replace(twoOutputDrv, `("out","/nix/store/2cn6wyr8lw0yyhv8m4ann6gc5h4zwnxs-x","","")`, `("out","","r:sha256","")`, 1), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDrvOutputs([]byte(tc.drv))
			if tc.want != nil {
				if err != nil || !slices.Equal(got, tc.want) {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %q, %v; want an error saying %q", got, err, tc.err)
			}
		})
	}
}

// FuzzParseDrvOutputs checks that no input makes the parser panic (a hook
// that crashes fails the build) and that every output it returns is a
// store path.
func FuzzParseDrvOutputs(f *testing.F) {
	f.Add([]byte(twoOutputDrv))
	f.Add([]byte(`Derive([("out","/nix/store/2cn6wyr8lw0yyhv8m4ann6gc5h4zwnxs-x","","")],[],[],"","",[],[])`))
	f.Add([]byte("Derive("))
	f.Fuzz(func(t *testing.T, data []byte) {
		paths, err := parseDrvOutputs(data)
		if err != nil {
			return
		}
		if len(paths) == 0 {
			t.Fatal("no outputs and no error")
		}
		for _, p := range paths {
			if err := storepath.Check("/nix/store", p); err != nil {
				t.Errorf("output %q: %v", p, err)
			}
		}
	})
}
