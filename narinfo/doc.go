// Package narinfo reads and writes Nix's .narinfo files, the per-path
// metadata of a binary cache, and computes the fingerprint that cache
// signatures cover.
//
// A narinfo is a sequence of "Key: value\n" lines (src/libstore/nar-info.cc):
//
//	StorePath: /nix/store/dc0v1jd72r6jrqwfkjx6qd4i2n86xwvl-hello
//	URL: nar/0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc.nar.xz
//	Compression: xz
//	FileHash: sha256:0vbkg3vvkc9hg02bwaw6mzik43vy1bpf8r56a2fjsmhz2a5r55bc
//	FileSize: 176
//	NarHash: sha256:1i8pp3zab0x3lwhqn7d3m7l8lhqpf91p3h97gf1clifm6yhf3hv0
//	NarSize: 168
//	References: apigg0m14gc8i536iy78wimj1d90aar2-dep
//	Deriver: 0fw55byy4ip93crpg380s5w0mg1q3m9d-hello.drv
//	Sig: cache.example.org-1:mrQE2R2O…
//	CA: text:sha256:…
//
// [Parse] follows Nix's parser: the key is the text before the first ':' of
// a line and the value starts two bytes after it (one space assumed) and runs
// to the next '\n', which every line, the last included, must have.
// StorePath, URL, NarHash and a positive NarSize are required; hashes may be
// written in any of Nix's encodings (hex, nix32, base64 or SRI); an empty or
// missing Compression means bzip2; "Deriver: unknown-deriver" means no
// deriver; a second References or CA line with a value is an error while
// other repeated keys overwrite; references and signatures are sets (sorted,
// duplicates dropped). Unknown keys are not an error: they are kept, in
// order, in [NarInfo.Extra].
//
// Two deliberate differences from Nix, both stricter: a line without ':'
// (such as a blank line) is an error, where Nix would silently join it to the
// key of the next line; and numbers are plain decimal (no leading '+').
//
// [NarInfo.String] writes Nix's field order (NarInfo::to_string): StorePath,
// URL, Compression, FileHash (if set), FileSize (if non-zero), NarHash,
// NarSize, References (always, with its space even when empty), Deriver (if
// set), Sig lines, CA (if set); hashes as "sha256:<nix32>". Unlike Nix, it
// then writes the unknown keys kept in Extra, so that rewriting a narinfo (to
// add a signature, say) does not lose what a newer Nix put there. A narinfo
// written by Nix is reproduced byte for byte.
//
// [Fingerprint] is ValidPathInfo::fingerprint (src/libstore/path-info.cc):
//
//	1;<store path>;<narhash as sha256:nix32>;<narsize>;<sorted full reference paths joined by ,>
//
// The store directory is never hard-coded: it comes from [WithStoreDir],
// else NIX_STORE_DIR, else /nix/store, as in Nix.
package narinfo
