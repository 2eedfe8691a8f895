// Package push uploads a closure of store paths to a binary cache bucket:
// the native `nix copy --to s3://…`.
//
// For each path the cache lacks, the NAR streams from the file system
// through a SHA-256 check against the store's NarHash and NarSize, a
// compressor (xz, zstd or none; parallel inside one NAR) and a second hash
// (FileHash, FileSize) into a multipart upload at
// nar/<nix32 NarHash>.nar<ext>. No temporary files, no whole-NAR buffers.
//
// The order of writes keeps the cache consistent whatever fails or is
// killed: nix-cache-info first; a path's narinfo only after its NAR and
// after the narinfos of all its references. So every narinfo a reader can
// see has its NAR and its whole closure behind it (Nix's
// BinaryCacheStore::addMultipleToStore keeps the same invariant).
//
// A push first makes a plan (what the cache lacks and the order of its
// writes, from one look at the cache), then an attempt carries it out:
// NAR workers and narinfo writers that follow the plan and decide nothing.
// The shared lock (package lock) is taken while the NARs upload; an
// attempt that finds, under it, that the cache changed meanwhile is
// followed by a new attempt from a new plan.
//
// With Options.SkipSignedBy, the paths signed locally by an upstream
// cache's key are left to it: not uploaded, yet satisfied references,
// and recorded as upstream (upstream.go).
//
// With Options.Logs, once the narinfos are written, the build logs Nix
// kept of the paths' derivations go to log/<drv base name> (logs.go), for
// `nix log --store`; they are outside the closure invariant, and a log
// that cannot be uploaded is a warning, not a failed push.
package push
