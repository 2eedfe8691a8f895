package s3cache

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// TestBoundXZ decodes an xz narinfo whose header asks for a 3 GiB
// dictionary without allocating it (not parallel: it counts the process's
// allocations), and refuses xz files of several blocks or streams.
func TestBoundXZ(t *testing.T) {
	text := "StorePath: /nix/store/0f5ld286vw0q3rz0hh36gk47iv86m095-hello\n"
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(text))
	w.Close()
	plain := buf.Bytes()

	// The same stream, declaring a 3 GiB dictionary (code 39).
	huge := bytes.Clone(plain)
	h := huge[xzHeaderLen:]
	hlen := (int(h[0]) + 1) * 4
	if h[2] != xzLZMA2 || h[3] != 1 {
		t.Fatalf("unexpected block header % x", h[:hlen])
	}
	h[4] = 39
	binary.LittleEndian.PutUint32(h[hlen-4:hlen], crc32.ChecksumIEEE(h[:hlen-4]))

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := decode("xz", huge, MaxDecodedNarInfo)
	runtime.ReadMemStats(&after)
	if err != nil || string(got) != text {
		t.Fatalf("decode = %q, %v; want the narinfo", got, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 256<<20 {
		t.Errorf("decoding a narinfo declaring a 3 GiB dictionary allocated %d MiB", n>>20)
	}

	padded := append(bytes.Clone(plain), 0, 0, 0, 0) // stream padding
	if got, err := decode("xz", padded, MaxDecodedNarInfo); err != nil || string(got) != text {
		t.Errorf("decode of a padded stream = %q, %v", got, err)
	}
	for name, data := range map[string][]byte{
		"two streams": append(bytes.Clone(plain), plain...),
		"truncated":   plain[:len(plain)-3],
		"not xz":      []byte(strings.Repeat("x", 40)),
	} {
		if _, err := decode("xz", data, MaxDecodedNarInfo); err == nil {
			t.Errorf("decode of %s: no error", name)
		}
	}
}
