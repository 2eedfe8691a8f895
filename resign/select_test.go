package resign_test

import (
	"testing"

	"github.com/nixbucket/nixbucket/resign"
)

func TestHashPart(t *testing.T) {
	const h = "0c0dgk8xqpyvsnsa1mlc5cg9cw3hk3wz"
	for _, tc := range []struct {
		arg, want string
	}{
		{h, h},
		{"/nix/store/" + h + "-hello-2.12", h},
		{"/nix/store/" + h + "-hello-2.12/bin/hello", h},
		{"/nix/store/" + h + "-hello/" + "1c0dgk8xqpyvsnsa1mlc5cg9cw3hk3wz-x", h},
		{"/other/store/" + h + "-hello", h},
		{"hello", ""},
		{h + "-hello", ""},
		{"/nix/store", ""},
		{"/" + h + "-hello", ""},
		{"/nix/store/" + h[:31] + "-hello", ""},
		{"0c0dgk8xqpyvsnsa1mlc5cg9cw3hk3wE", ""},
	} {
		got, err := resign.HashPart(tc.arg)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("HashPart(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
}
