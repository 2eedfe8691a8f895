// Package verify checks the invariant a binary cache must keep for Nix to
// substitute from it: every narinfo a reader can see has its NAR and its
// whole closure behind it.
//
// Check lists the bucket once and then, for every <hash>.narinfo (the
// layout of src/libstore/binary-cache-store.cc):
//
//   - it parses as Nix parses it (narinfo.Parse; src/libstore/nar-info.cc)
//     and its StorePath's hash part is the key's;
//   - its NAR (the URL key) is in the listing, FileSize bytes long when
//     FileSize is set;
//   - every reference has a narinfo in the bucket (Nix's uploadNarInfo
//     refuses to write a narinfo whose references are not valid);
//   - with Options.TrustedKeys, at least one signature verifies under a
//     trusted key (ValidPathInfo::checkSignatures in src/libstore/path-info.cc);
//   - with Options.Deep, its NAR is downloaded and streamed through the
//     checks of a substituting Nix: FileHash and FileSize of the compressed
//     bytes, decompression, NarHash and NarSize of the NAR, and its
//     structure (nar.Check, parseDump in src/libutil/archive.cc).
//
// Nix also accepts a content-addressed path without any signature when its
// CA field proves the store path. Check does not recompute content
// addresses: with TrustedKeys set, a narinfo no trusted key signed is
// reported "unsigned" even when it has a CA field.
//
// Check reads a narinfo only when no root manifest (package roots) vouches
// for it: an entry recording the MD5 of the narinfo's text that is the
// listed ETag (what gc and stats trust too) gives its StorePath, NAR key,
// FileSize and References, and, with TrustedKeys, its NarHash, NarSize and
// signatures, when the entry records them (manifests of older nixbucket
// versions do not: those narinfos are read). A cache pushed with --root
// is then checked at the cost of its listing and its manifests. A vouched
// narinfo in which any check fails is read and checked again, so every
// fault reported is found in the narinfo itself; Deep reads every
// narinfo, for its hashes and compression. The entry is trusted as the
// narinfo's own record: a writer who forges a manifest entry (fields and
// the MD5 of another text) could make Check pass a narinfo it would fail;
// signatures bind store paths to NARs for Nix's clients, which check
// them themselves.
//
// A reference push --skip-signed-by left to an upstream cache (recorded
// as an upstream entry of a root manifest, or in an upstream record under
// upstream/, package roots) is not a fault: Nix fetches it from the
// upstream cache. Report.UpstreamReferences counts such paths ("N
// references left to upstream"); Options.RequireComplete makes each
// reference to one a missing-reference fault, for a cache that must
// serve whole closures alone. A record that does not parse explains
// nothing: its references stay faults.
//
// A NAR no narinfo points to (left by an interrupted push) is counted, not
// reported as a fault: it is invisible to readers, and garbage collection
// removes it. nix-cache-info must exist once any narinfo does, since Nix
// refuses a cache without it.
package verify
