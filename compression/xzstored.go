package compression

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// An incompressible piece of a NAR (random bytes, compressed archives,
// images) is written as an xz stream of stored LZMA2 chunks: ulikunitz/xz
// spends about a microsecond a byte searching such data for matches (under
// 1 MB/s) before storing it anyway, while liblzma does the same in a
// fraction of the time. The stream is the .xz format (tukaani.org/xz
// xz-file-format.txt) with one block holding one LZMA2 filter, CRC32 check.

// storedChunk is the largest stored LZMA2 chunk (a 16-bit size field).
const storedChunk = 1 << 16

// xzStreamFlags are the stream flags: no reserved bits, check CRC32.
var xzStreamFlags = [2]byte{0x00, 0x01}

// appendStoredXZ appends to dst one complete xz stream holding src in
// stored (uncompressed) LZMA2 chunks.
func appendStoredXZ(dst *bytes.Buffer, src []byte) {
	le := binary.LittleEndian
	// Stream header: magic, flags, CRC32 of the flags.
	dst.Write([]byte{0xFD, '7', 'z', 'X', 'Z', 0x00})
	dst.Write(xzStreamFlags[:])
	dst.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(xzStreamFlags[:])))

	// Block header: its size/4-1, flags (one filter, no sizes), the LZMA2
	// filter (id 0x21) with one property byte (dictionary 4 KiB: stored
	// chunks need none), padding to a multiple of four, CRC32.
	header := []byte{0, 0x00, 0x21, 0x01, 0x00, 0, 0, 0}
	header[0] = byte((len(header)+4)/4 - 1)
	dst.Write(header)
	dst.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(header)))

	// LZMA2 data: stored chunks (0x01 resets the dictionary, 0x02 does
	// not), each with its size-1 big-endian, then the end marker.
	data := 0
	for i := 0; i < len(src); i += storedChunk {
		piece := src[i:min(i+storedChunk, len(src))]
		control := byte(0x02)
		if i == 0 {
			control = 0x01
		}
		dst.Write([]byte{control, byte((len(piece) - 1) >> 8), byte(len(piece) - 1)})
		dst.Write(piece)
		data += 3 + len(piece)
	}
	dst.WriteByte(0x00)
	data++
	for data%4 != 0 { // block padding
		dst.WriteByte(0)
		data++
	}
	dst.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(src)))

	// Index: indicator, one record (unpadded size, uncompressed size),
	// padding, CRC32.
	unpadded := uint64(len(header)+4) + uint64(3*((len(src)+storedChunk-1)/storedChunk)+len(src)+1) + 4
	index := []byte{0x00}
	index = binary.AppendUvarint(index, 1)
	index = binary.AppendUvarint(index, unpadded)
	index = binary.AppendUvarint(index, uint64(len(src)))
	for len(index)%4 != 0 {
		index = append(index, 0)
	}
	dst.Write(index)
	dst.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(index)))

	// Stream footer: CRC32 of backward size and flags, backward size
	// (index size/4-1), flags, magic.
	footer := le.AppendUint32(nil, uint32((len(index)+4)/4-1))
	footer = append(footer, xzStreamFlags[:]...)
	dst.Write(le.AppendUint32(nil, crc32.ChecksumIEEE(footer)))
	dst.Write(footer)
	dst.Write([]byte{'Y', 'Z'})
}
