package compression_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/nixbucket/nixbucket/compression"
)

// sample returns n bytes mixing random and repetitive runs, like binaries.
func sample(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; {
		run := min(n-i, 1+r.IntN(4096))
		if r.IntN(2) == 0 {
			for j := range run {
				b[i+j] = byte(r.Uint32())
			}
		} else {
			copy(b[i:i+run], bytes.Repeat([]byte("nix-archive-1 "), run/14+1))
		}
		i += run
	}
	return b
}

func compress(t *testing.T, algo string, data []byte, opts compression.Options) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := compression.NewWriter(&out, algo, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Write in odd-sized pieces to cross chunk boundaries.
	for p := data; len(p) > 0; {
		k := min(len(p), 7777)
		if _, err := w.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRoundTrip decodes with this package and with the reference tools
// (xz-utils' liblzma, as Nix uses, and zstd's own CLI).
func TestRoundTrip(t *testing.T) {
	const chunk = 64 << 10
	sizes := []int{0, 1, 100, chunk - 1, chunk, chunk + 1, 3*chunk + 5}
	tools := map[string][]string{compression.XZ: {"xz", "-dc"}, compression.Zstd: {"zstd", "-dcq"}}
	for _, algo := range compression.Algorithms {
		for _, n := range sizes {
			data := sample(n, uint64(n))
			// An unknown size hint makes zstd chunk too (a known small one
			// takes the single-encoder path).
			hint := int64(n)
			if n%2 == 1 {
				hint = 0
			}
			z := compress(t, algo, data, compression.Options{SizeHint: hint, ChunkSize: chunk})
			r, err := compression.NewReader(bytes.NewReader(z), algo)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("%s %d: decoding: %v", algo, n, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s %d: round trip differs", algo, n)
			}
			if tool := tools[algo]; tool != nil {
				cmd := exec.Command(tool[0], tool[1:]...)
				cmd.Stdin = bytes.NewReader(z)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s %d: %s: %v (run `make test` to install it)", algo, n, tool[0], err)
				}
				if sha256.Sum256(out) != sha256.Sum256(data) {
					t.Fatalf("%s %d: %s decodes to other bytes", algo, n, tool[0])
				}
			}
		}
	}
}

func TestCompresses(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20)
	for _, algo := range []string{compression.XZ, compression.Zstd} {
		if z := compress(t, algo, data, compression.Options{}); len(z) > len(data)/50 {
			t.Errorf("%s: %d bytes of repetitive input compressed to %d", algo, len(data), len(z))
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

func TestWriteErrorSurfaces(t *testing.T) {
	w, err := compression.NewWriter(&failWriter{n: 10}, compression.XZ, compression.Options{ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := sample(1<<20, 7)
	_, werr := w.Write(data)
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("got no error from a failing destination")
	}
}

func TestCheckAndExt(t *testing.T) {
	for _, tc := range []struct {
		algo, ext string
		ok        bool
	}{{"xz", ".xz", true}, {"zstd", ".zst", true}, {"none", "", true}, {"bzip2", "", false}, {"", "", false}} {
		if err := compression.Check(tc.algo); (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v", tc.algo, err)
		}
		if got := compression.Ext(tc.algo); got != tc.ext {
			t.Errorf("Ext(%q) = %q, want %q", tc.algo, got, tc.ext)
		}
	}
	if _, err := compression.NewWriter(io.Discard, "gzip", compression.Options{}); err == nil {
		t.Error("NewWriter accepted gzip")
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(""), uint8(0))
	f.Add([]byte("nix-archive-1"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, a uint8) {
		algo := compression.Algorithms[int(a)%len(compression.Algorithms)]
		z := compress(t, algo, data, compression.Options{SizeHint: int64(len(data))})
		r, err := compression.NewReader(bytes.NewReader(z), algo)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// TestManyStreams compresses more concurrent streams than there are chunk
// tokens: none may deadlock, all must round-trip.
func TestManyStreams(t *testing.T) {
	const streams = 12
	errs := make(chan error, streams)
	for i := range streams {
		go func() {
			data := sample(300<<10+i, uint64(i))
			var out bytes.Buffer
			w, err := compression.NewWriter(&out, compression.XZ, compression.Options{ChunkSize: 64 << 10})
			if err == nil {
				_, err = w.Write(data)
			}
			if err == nil {
				err = w.Close()
			}
			if err == nil {
				var r io.ReadCloser
				if r, err = compression.NewReader(&out, compression.XZ); err == nil {
					var got []byte
					if got, err = io.ReadAll(r); err == nil && !bytes.Equal(got, data) {
						err = io.ErrShortWrite
					}
				}
			}
			errs <- err
		}()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestLevels checks that the level reaches the codec: with a 1 MiB
// dictionary (xz level 1) a block repeated 2 MiB apart finds no match, with
// the default 8 MiB one it does; zstd's best speed beats its fastest on
// text. Every output decodes with the reference tools.
func TestLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: slow (xz -9 and zstd -19 of 6 to 8 MiB)")
	}
	block := sample(2<<20, 42)
	for i := range block {
		block[i] |= 0x80 // random-looking, so only the repeat compresses
	}
	repeated := bytes.Repeat(block, 3)
	sizes := map[string]int{}
	for _, tc := range []struct {
		algo  string
		level int
		data  []byte
	}{
		{compression.XZ, 1, repeated},
		{compression.XZ, 0, repeated},
		{compression.XZ, 9, repeated},
		{compression.Zstd, 1, sample(8<<20, 3)},
		{compression.Zstd, 19, sample(8<<20, 3)},
	} {
		z := compress(t, tc.algo, tc.data, compression.Options{Level: tc.level, ChunkSize: 8 << 20})
		tool := map[string][]string{compression.XZ: {"xz", "-dc"}, compression.Zstd: {"zstd", "-dcq"}}[tc.algo]
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Stdin = bytes.NewReader(z)
		out, err := cmd.Output()
		if err != nil || !bytes.Equal(out, tc.data) {
			t.Fatalf("%s level %d: %s does not decode it: %v", tc.algo, tc.level, tool[0], err)
		}
		sizes[fmt.Sprintf("%s-%d", tc.algo, tc.level)] = len(z)
	}
	t.Logf("compressed sizes: %v", sizes)
	if sizes["xz-1"] < 2*sizes["xz-0"] {
		t.Errorf("xz level 1 (%d bytes) is not far larger than the default (%d): the level did not change the dictionary", sizes["xz-1"], sizes["xz-0"])
	}
	if sizes["xz-9"] > sizes["xz-0"]*11/10 {
		t.Errorf("xz level 9 gave %d bytes, the default %d", sizes["xz-9"], sizes["xz-0"])
	}
	if sizes["zstd-19"] >= sizes["zstd-1"] {
		t.Errorf("zstd level 19 gave %d bytes, level 1 %d: the level did not reach the encoder", sizes["zstd-19"], sizes["zstd-1"])
	}
}

func TestNixLevel(t *testing.T) {
	for _, tc := range []struct {
		algo  string
		level int
		want  int
		ok    bool
	}{
		{"xz", -1, 0, true}, {"xz", 0, 1, true}, {"xz", 6, 6, true}, {"xz", 9, 9, true}, {"xz", 10, 0, false},
		{"zstd", -1, 0, true}, {"zstd", 0, 0, true}, {"zstd", 19, 19, true}, {"zstd", 22, 22, true}, {"zstd", 23, 0, false},
		{"none", 5, 0, true}, {"xz", -2, 0, false}, {"bzip2", 1, 0, false},
	} {
		got, err := compression.NixLevel(tc.algo, tc.level)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NixLevel(%s, %d) = %d, %v; want %d, ok %v", tc.algo, tc.level, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), tc.algo) {
			t.Errorf("NixLevel(%s, %d) error %q does not name the algorithm", tc.algo, tc.level, err)
		}
	}
}
