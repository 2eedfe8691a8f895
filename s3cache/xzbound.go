package s3cache

// The dictionary an xz stream declares is allocated whole by the decoder
// (ulikunitz/xz): a narinfo of a few bytes can ask for 1.5 GiB. A stream
// decoded to at most limit bytes never needs a larger dictionary, so its
// declared size is lowered to limit before decoding.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// xz container constants (https://tukaani.org/xz/xz-file-format.txt).
const (
	xzHeaderLen = 12
	xzFooterLen = 12
	xzLZMA2     = 0x21
)

// boundXZ returns data, a single-stream, single-block xz file whose only
// filter is LZMA2 (what Nix, xz and liblzma write for a small object),
// with its dictionary lowered to the smallest size of at least limit
// bytes; anything else is an error.
func boundXZ(data []byte, limit int64) ([]byte, error) {
	data = bytes.TrimRight(data, "\x00") // stream padding; a footer ends in "YZ"
	if len(data) < xzHeaderLen+xzFooterLen || !bytes.HasPrefix(data, []byte("\xfd7zXZ\x00")) || string(data[len(data)-2:]) != "YZ" {
		return nil, errors.New("not an xz stream")
	}
	footer := data[len(data)-xzFooterLen:]
	indexLen := (int(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
	indexAt := len(data) - xzFooterLen - indexLen
	if indexAt <= xzHeaderLen || data[indexAt] != 0 {
		return nil, errors.New("bad xz index")
	}
	records, n := binary.Uvarint(data[indexAt+1:])
	if n <= 0 || records != 1 {
		return nil, fmt.Errorf("an xz stream of %d blocks; want one", records)
	}
	unpadded, m := binary.Uvarint(data[indexAt+1+n:])
	if m <= 0 || xzHeaderLen+int((unpadded+3)&^3) != indexAt {
		return nil, errors.New("more than one xz stream, or a bad index")
	}
	out := bytes.Clone(data)
	h := out[xzHeaderLen:]
	hlen := (int(h[0]) + 1) * 4
	if h[0] == 0 || hlen > len(h) {
		return nil, errors.New("bad xz block header")
	}
	flags, p := h[1], 2
	if flags&0x03 != 0 {
		return nil, errors.New("an xz block with filters other than LZMA2")
	}
	for _, bit := range []byte{0x40, 0x80} { // compressed and uncompressed sizes
		if flags&bit != 0 {
			_, k := binary.Uvarint(h[p:hlen])
			if k <= 0 {
				return nil, errors.New("bad xz block header")
			}
			p += k
		}
	}
	if p+3 > hlen-4 || h[p] != xzLZMA2 || h[p+1] != 1 {
		return nil, errors.New("an xz block with filters other than LZMA2")
	}
	if code := h[p+2]; code > 40 {
		return nil, errors.New("bad LZMA2 dictionary size")
	} else if dictSize(code) > limit {
		for c := byte(0); c <= 40; c++ {
			if dictSize(c) >= limit {
				h[p+2] = c
				break
			}
		}
		binary.LittleEndian.PutUint32(h[hlen-4:hlen], crc32.ChecksumIEEE(h[:hlen-4]))
	}
	return out, nil
}

// dictSize is the dictionary size an LZMA2 dictionary code stands for.
func dictSize(code byte) int64 {
	if code >= 40 {
		return 1<<32 - 1
	}
	return int64(2|code&1) << (code/2 + 11)
}
