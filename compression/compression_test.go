package compression_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os/exec"
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
