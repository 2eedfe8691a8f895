package s3test

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Codings are the Content-Encodings Nix's narinfo-compression writes
// and niks3 (zstd) uses, in the order tests cycle through them.
var Codings = []string{"zstd", "xz", "br", "gzip"}

// Encode compresses data with a content coding of Codings, as Nix's
// narinfo-compression and niks3 store narinfos.
func Encode(t testing.TB, coding string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch coding {
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "br":
		w = brotli.NewWriterLevel(&buf, brotli.DefaultCompression)
	case "gzip":
		w = gzip.NewWriter(&buf)
	default:
		t.Fatalf("s3test: unknown coding %q", coding)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
