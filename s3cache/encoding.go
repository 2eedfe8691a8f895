package s3cache

// Content-Encoding: the narinfos, listings and logs that Nix
// (narinfo-compression, ls-compression, log-compression) and niks3 (zstd
// narinfos) store compressed, decoded on reading; narinfos encoded on
// writing when the URL asks (narinfo-compression).

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nixbucket/nixbucket/layout"
)

// Bounds of a decoded object, held in memory whole: a narinfo is a few
// KiB (a few hundred with thousands of references); listings and build
// logs can be larger.
const (
	// MaxDecodedNarInfo is the largest narinfo decoded, in bytes.
	MaxDecodedNarInfo = 8 << 20
	// MaxDecodedSize is the largest listing or log decoded, in bytes.
	MaxDecodedSize = 64 << 20
)

// ErrTooLarge is returned (wrapped) when an object decodes to more than
// its bound.
var ErrTooLarge = errors.New("decoded object too large")

// Decodes reports whether Get and GetWithInfo decode the object at key
// when it is stored with a Content-Encoding: narinfos, .ls listings and
// build logs, never NARs.
func Decodes(key string) bool {
	switch layout.KindOf(key) {
	case layout.KindNarInfo, layout.KindListing, layout.KindLog:
		return true
	}
	return false
}

// decodedLimit is the bound of key's decoded object.
func decodedLimit(key string) int64 {
	if layout.KindOf(key) == layout.KindNarInfo {
		return MaxDecodedNarInfo
	}
	return MaxDecodedSize
}

// codings returns the content codings of a Content-Encoding value, in the
// order they were applied, without identity (and aws-chunked, which some
// S3 servers keep from the upload's framing).
func codings(enc string) []string {
	var out []string
	for c := range strings.SplitSeq(enc, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		if c != "" && c != "identity" && c != "aws-chunked" {
			out = append(out, c)
		}
	}
	return out
}

// decodeBody reads the whole body of key, stored with Content-Encoding
// enc, closes it, and returns the decoded bytes, at most decodedLimit(key)
// of them. An empty enc returns the body as read.
func decodeBody(key, enc string, body io.ReadCloser) ([]byte, error) {
	defer body.Close()
	limit := decodedLimit(key)
	data, err := readAtMost(body, limit)
	if err != nil {
		return nil, fmt.Errorf("getting %s: %w", key, err)
	}
	cs := codings(enc)
	for _, c := range slices.Backward(cs) {
		if data, err = decode(c, data, limit); err != nil {
			return nil, fmt.Errorf("getting %s: decoding Content-Encoding %s: %w", key, enc, err)
		}
	}
	return data, nil
}

// readAtMost reads r to its end, failing if it has more than limit bytes.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
	}
	return data, nil
}

// decode undoes one content coding.
func decode(coding string, data []byte, limit int64) ([]byte, error) {
	in := bytes.NewReader(data)
	var r io.Reader
	switch coding {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(in)
		if err != nil {
			return nil, err
		}
		r = zr
	case "deflate":
		zr, err := zlib.NewReader(in)
		if err != nil {
			return nil, err
		}
		r = zr
	case "xz":
		bounded, err := boundXZ(data, limit)
		if err != nil {
			return nil, err
		}
		xr, err := xz.NewReader(bytes.NewReader(bounded))
		if err != nil {
			return nil, err
		}
		r = xr
	case "zstd":
		zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(limit)), zstd.WithDecoderMaxWindow(uint64(limit)))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	case "br":
		r = brotli.NewReader(in)
	case "bzip2":
		r = bzip2.NewReader(in)
	default:
		return nil, fmt.Errorf("unsupported coding %q (want gzip, xz, zstd, br, bzip2 or deflate)", coding)
	}
	return readAtMost(r, limit)
}

// Magic numbers of the compressions a narinfo file may be stored in.
var magics = []struct {
	coding string
	magic  string
}{
	{"gzip", "\x1f\x8b"},
	{"xz", "\xfd7zXZ\x00"},
	{"zstd", "\x28\xb5\x2f\xfd"},
	{"bzip2", "BZh"},
}

// narInfoStart begins every narinfo Nix writes.
const narInfoStart = "StorePath: "

// sniffNarInfo returns the coding of a narinfo file that begins with head
// (at least its first 11 bytes, or all of it): "" for plain text, the
// compression its magic number shows, or "br" for anything else that
// brotli turns into a narinfo (brotli has no magic number).
func sniffNarInfo(head []byte, all func() ([]byte, error)) string {
	if bytes.HasPrefix(head, []byte(narInfoStart)) || len(head) == 0 {
		return ""
	}
	for _, m := range magics {
		if bytes.HasPrefix(head, []byte(m.magic)) {
			return m.coding
		}
	}
	data, err := all()
	if err != nil {
		return ""
	}
	plain, err := decode("br", data, MaxDecodedNarInfo)
	if err == nil && bytes.HasPrefix(plain, []byte(narInfoStart)) {
		return "br"
	}
	return ""
}

// encode applies the content coding c (zstd, br or gzip) to data.
func encode(c string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case "zstd":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		w = zw
	case "br":
		w = brotli.NewWriterLevel(&buf, brotli.DefaultCompression)
	case "gzip":
		w = gzip.NewWriter(&buf)
	default:
		return nil, fmt.Errorf("unsupported coding %q (want zstd, br or gzip)", c)
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeNarInfo returns what Put stores for key: a narinfo encoded with
// the URL's narinfo-compression when it has one, else r, size and opts
// as they are.
func (b *S3Bucket) encodeNarInfo(key string, r io.Reader, size int64, opts PutOptions) (io.Reader, int64, PutOptions, error) {
	c := b.url.NarinfoCompression
	if c == "" || opts.ContentEncoding != "" || layout.KindOf(key) != layout.KindNarInfo || size < 0 || size > MaxDecodedNarInfo {
		return r, size, opts, nil
	}
	data, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return nil, 0, opts, fmt.Errorf("putting %s: reading: %w", key, err)
	}
	if err := checkSize(key, size, int64(len(data))); err != nil {
		return nil, 0, opts, err
	}
	enc, err := encode(c, data)
	if err != nil {
		return nil, 0, opts, fmt.Errorf("putting %s: encoding %s: %w", key, c, err)
	}
	opts.ContentEncoding = c
	return bytes.NewReader(enc), int64(len(enc)), opts, nil
}
