package compression_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/compression"
)

// randomBytes returns n incompressible bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestXZIncompressible checks that incompressible pieces are stored, not
// searched for matches: the output of random input is barely larger than
// it, mixed input is a concatenation of compressed and stored streams, and
// xz-utils (liblzma, as Nix) and this package decode every case exactly.
func TestXZIncompressible(t *testing.T) {
	const mib = 1 << 20
	text := bytes.Repeat([]byte("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-text "), 2*mib/48)
	for _, tc := range []struct {
		name    string
		data    []byte
		streams int // xz streams in the output
		maxSize int // bytes, at most
	}{
		{"random, odd size", randomBytes(3*mib+12345, 1), 1, 3*mib + 12345 + 3*mib/(1<<16)*3 + 200},
		{"random, stored-chunk multiple", randomBytes(1<<17, 2), 1, 1<<17 + 300},
		{"random then text then random", concat(randomBytes(mib+1, 3), text, randomBytes(2*mib-7, 4)), 3, 3*mib + 200<<10},
		{"text then random", concat(text, randomBytes(mib, 5)), 2, mib + 200<<10},
		{"a small random file stays compressed", randomBytes(3000, 6), 1, 3300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := compress(t, compression.XZ, tc.data, compression.Options{})
			if len(z) > tc.maxSize {
				t.Errorf("%d bytes compressed to %d, want at most %d", len(tc.data), len(z), tc.maxSize)
			}
			r, err := compression.NewReader(bytes.NewReader(z), compression.XZ)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("decoding: %v (equal: %v)", err, bytes.Equal(got, tc.data))
			}
			cmd := exec.Command("xz", "-dc")
			cmd.Stdin = bytes.NewReader(z)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("xz -dc: %v (run `make test` to install xz-utils)", err)
			}
			if sha256.Sum256(out) != sha256.Sum256(tc.data) {
				t.Fatal("xz -dc decodes to other bytes")
			}
			if n := xzStreams(t, z); n != tc.streams {
				t.Errorf("%d xz streams, want %d", n, tc.streams)
			}
		})
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// xzStreams counts the streams of an .xz file with `xz --robot --list`.
func xzStreams(t *testing.T, z []byte) int {
	t.Helper()
	f := t.TempDir() + "/f.xz"
	if err := os.WriteFile(f, z, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("xz", "--robot", "--list", f).Output()
	if err != nil {
		t.Fatalf("xz --list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if fields := strings.Split(line, "\t"); fields[0] == "file" && len(fields) > 1 {
			n, _ := strconv.Atoi(fields[1])
			return n
		}
	}
	t.Fatalf("xz --list printed no file line: %s", out)
	return 0
}
