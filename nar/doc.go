// Package nar writes, hashes and checks NARs (Nix ARchives), the
// serialisation Nix hashes to get a store path's NarHash and uploads to a
// binary cache.
//
// A NAR is a sequence of strings, each an unsigned 64-bit little-endian
// length, the bytes, and zero padding up to a multiple of 8:
//
//	nar       = "nix-archive-1", node
//	node      = "(", "type", ( regular | symlink | directory ), ")"
//	regular   = "regular", [ "executable", "" ], "contents", <file bytes>
//	symlink   = "symlink", "target", <target>
//	directory = "directory", { "entry", "(", "name", <name>, "node", node, ")" }
//
// Only three kinds of file exist: a regular file is executable when its
// owner-execute bit is set (no other mode bit, owner, time or extended
// attribute is recorded), a symlink keeps its target as written, and a
// directory lists its entries sorted by name in byte order, strictly
// increasing. Hard links are not recorded: a file linked twice is written
// twice. The root may be any of the three. Sockets, fifos and devices cannot
// be represented and are refused.
//
// Newer Nix (2.35, and the 2.28.7–2.34.7 backports) refuses NARs nested
// deeper than 64 levels, entry names over 255 bytes and symlink targets over
// 4095 bytes; this package enforces the same limits on what it writes and
// checks, so that every NAR it produces is one every Nix accepts.
//
// NarHash is the SHA-256 of the whole uncompressed NAR and NarSize its length.
//
// The format is Nix's src/libutil/archive.cc (dumpPath, parseDump) with the
// string primitives of src/libutil/serialise.cc; the specification is
// doc/manual/source/protocols/nix-archive/index.md in the Nix repository.
//
// Dump streams a path as a NAR, byte for byte what `nix-store --dump`
// writes; Open gives the same stream as an io.ReadCloser. Hasher computes
// NarHash and NarSize of what passes through it and Verify compares them with
// what the store records; VerifyPath does both for one path. Check validates
// a NAR read from anywhere (a cache, for verify --deep) without keeping it.
//
// Dump writes with its own small encoder rather than go-nix's nar.Writer: that
// writer hands every header through a goroutine and channels and writes each
// token, length and padding as a separate small Write, and go-nix's DumpPath
// copies file contents with io.Copy's 32 KiB buffer and enforces none of the
// limits above. Dump gathers tokens and file contents into one pooled 1 MiB
// buffer, so the writer underneath (a hash, a compressor) sees few, large
// writes, and its memory does not grow with the size of the files. It walks
// the tree with openat/fstat/read on raw descriptors relative to their
// directory: the system calls, not Go, bound its speed, and it dumps faster
// than nix-store --dump.
package nar
