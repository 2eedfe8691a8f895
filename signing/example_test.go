package signing_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/nixbucket/nixbucket/signing"
)

func Example() {
	// A key as nix-store --generate-binary-cache-key writes it (this one is
	// public knowledge: never use it).
	k, err := signing.ParseSecretKey("test-1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyB5tVYuj+ZU+UB4sRLoqYunkB+FOuaVvtfg45ELrQSWZA==\n")
	if err != nil {
		fmt.Println(err)
		return
	}
	fingerprint := []byte("1;/nix/store/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-hello;sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0;168;")
	sig := k.Sign(fingerprint)
	fmt.Println(k.PublicKey())
	fmt.Println(sig)

	trusted := signing.NewPublicKeys(k.PublicKey())
	n, err := trusted.CountValid(fingerprint, []string{sig, "cache.nixos.org-1:ignored"})
	fmt.Println(n, err)

	// Printing or logging the key shows its name only.
	fmt.Printf("%v %+v %#v\n", k, k, k)
	slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).Info("signing", "key", k)
	// Output:
	// test-1:ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ=
	// test-1:r8DkQW67C+1grnHtrUFjmlO71BAx8B/ybj+2HOy8AxbYvInEeAkWo2YKp4Crm3X5PdyKnunSAkk7d8h4bw79Bg==
	// 1 <nil>
	// test-1 test-1 signing.SecretKey("test-1")
	// level=INFO msg=signing key=test-1
}
