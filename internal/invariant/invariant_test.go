package invariant_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/internal/invariant"
	"github.com/nixbucket/nixbucket/layout"
	"github.com/nixbucket/nixbucket/narinfo"
	"github.com/nixbucket/nixbucket/s3cache"
)

const (
	top = "dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-top"
	dep = "0vbkg3vvkc9hg02bwaw6mzik43vy1bpf-dep"
)

func put(t *testing.T, b s3cache.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), s3cache.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestNarInfo checks that each broken promise is reported, and a kept
// one is not.
func TestNarInfo(t *testing.T) {
	t.Parallel()
	ni := func(fileSize uint64, refs ...string) []byte {
		n := narinfo.NarInfo{StorePath: "/nix/store/" + top, URL: "nar/top.nar", Compression: "none", FileSize: fileSize,
			NarHash: nixhash.MustParseNixBase32("sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0"), NarSize: 4, References: refs}
		return []byte(n.String())
	}
	for _, tc := range []struct {
		name     string
		narinfo  []byte
		nar, ref bool // present
		want     []string
	}{
		{"whole", ni(4, dep, top), true, true, nil},
		{"no size given", ni(0, dep), true, true, nil},
		{"NAR missing", ni(4, dep), false, true, []string{"its NAR nar/top.nar is missing"}},
		{"NAR of another size", ni(5), true, false, []string{"its NAR nar/top.nar has 4 bytes, the narinfo says 5"}},
		{"reference missing", ni(4, dep, top), true, false, []string{"its reference " + dep + " has no narinfo"}},
		{"garbage", []byte("StorePath: nowhere\n"), true, true, []string{"does not parse: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := s3cache.NewMemBucket()
			put(t, b, layout.NarInfoKeyOf(top), tc.narinfo)
			if tc.nar {
				put(t, b, "nar/top.nar", []byte("data"))
			}
			if tc.ref {
				put(t, b, layout.NarInfoKeyOf(dep), []byte("StorePath: /nix/store/"+dep+"\n"))
			}
			got, err := invariant.NarInfo(context.Background(), b, layout.NarInfoKeyOf(top))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tc.want, strings.HasPrefix) {
				t.Errorf("problems %q, want %q (each a prefix)", got, tc.want)
			}
		})
	}
}

// TestNarInfoGone: a narinfo that is not there is an error wrapping
// ErrNotFound, not a problem.
func TestNarInfoGone(t *testing.T) {
	t.Parallel()
	_, err := invariant.NarInfo(context.Background(), s3cache.NewMemBucket(), layout.NarInfoKeyOf(top))
	if !errors.Is(err, s3cache.ErrNotFound) {
		t.Errorf("error %v, want ErrNotFound", err)
	}
}
