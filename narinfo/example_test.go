package narinfo_test

import (
	"fmt"
	"os"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/nixbucket/nixbucket/narinfo"
)

func ExampleNarInfo_String() {
	n := narinfo.NarInfo{
		StorePath:   "/nix/store/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-hello",
		URL:         "nar/0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc.nar.xz",
		Compression: "xz",
		FileHash:    nixhash.MustParseNixBase32("sha256:0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc"),
		FileSize:    176,
		NarHash:     nixhash.MustParseNixBase32("sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0"),
		NarSize:     168,
	}
	fmt.Print(n.String())
	// Output:
	// StorePath: /nix/store/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-hello
	// URL: nar/0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc.nar.xz
	// Compression: xz
	// FileHash: sha256:0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc
	// FileSize: 176
	// NarHash: sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0
	// NarSize: 168
	// References:
}

func ExampleNarInfo_Fingerprint() {
	n, err := narinfo.ParseString(`StorePath: /nix/store/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-hello
URL: nar/0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc.nar.xz
Compression: xz
NarHash: sha256-YMPhoDfVRcqCeyfBcUNyF0OK6KmjHYshp6ODpf64F8U=
NarSize: 168
References: dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-hello apigg0m14gc8i536iy78wimj1d90aar2-dep
`, narinfo.WithStoreDir("/nix/store"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fp, err := n.Fingerprint()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println(fp)
	// Output:
	// 1;/nix/store/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-hello;sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0;168;/nix/store/apigg0m14gc8i536iy78wimj1d90aar2-dep,/nix/store/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-hello
}
