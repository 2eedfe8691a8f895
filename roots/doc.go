// Package roots keeps the root manifests of a binary cache bucket: what
// each push was for, so that garbage collection knows what to keep. Like
// package lock, it is a protocol of the whole cache, not a part of gc:
// push writes a manifest for every push with --root NAME, and `roots
// pin|unpin|rm` change the roots, all under the shared lock; gc, under
// the exclusive lock, keeps what the kept manifests name and expires the
// manifests past its retention policy; stats reads them too.
//
// A push with --root NAME writes one manifest (manifest.go),
//
//	roots/NAME/<UTC time as 20060102T150405Z>-<random>.json
//
// under layout.RootsDir: a plain JSON document (readable with curl)
// listing the top-level paths and every path of the pushed closure with
// its narinfo key, NarHash, NarSize, references, NAR key and file size,
// the MD5 of its narinfo's text (its ETag), its signatures and its
// Deriver (manifests marked "derivers": true): for the paths the push
// uploaded, from what it wrote; for those the cache already had, from
// their narinfos, which the push reads (a GET each, in parallel with the
// uploads). A root is pinned when roots/NAME/pinned exists (pin.go); gc
// keeps every manifest of a pinned root. The manifest's time is in its
// key (key.go), so retention decisions need a LIST only (index.go), and
// any other key under roots/ makes gc fail closed.
//
// A push with --skip-signed-by leaves some paths to an upstream cache:
// its manifest lists them as entries marked "upstream": true, naming no
// NAR or narinfo of this cache. A push without --root whose narinfos
// refer to such paths writes an upstream record instead (upstream.go),
//
//	upstream/<UTC time>-<random>.json
//
// under layout.UpstreamDir, listing those paths with the names of the
// keys that signed them, before its first narinfo that refers to one.
// verify and stats read both to tell a reference left upstream from a
// missing one; gc keeps the records.
//
// Nix has no such notion in a binary cache; the closure recorded is what
// `nix-store -qR` gives (src/libstore/misc.cc computeFSClosure).
package roots
