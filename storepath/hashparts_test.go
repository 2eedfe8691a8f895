package storepath_test

import (
	"slices"
	"testing"

	"github.com/nixbucket/nixbucket/storepath"
)

func TestHashParts(t *testing.T) {
	a := "0123456789abcdfghijklmnpqrsvwxyz"
	b := "zyxwvsrqpnmlkjihgfdcba9876543210"
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, []string{}},
		{[]string{b + "-b", a + "-a", "/nix/store/" + b + "-b"}, []string{a, b}},
		{[]string{"short", a + "-x"}, []string{a}},
	} {
		if got := storepath.HashParts(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("HashParts(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
