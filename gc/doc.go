// Package gc collects the garbage of a binary cache bucket: the narinfos,
// NARs and .ls listings that no kept root reaches, safely beside pushes.
//
// Retention (restic's forget, applied per root name to the manifests of
// package gc/roots): keep the newest KeepLast manifests and those younger
// than KeepWithin; every manifest of a pinned root; all of them when no
// policy is given. Expired manifests are deleted.
//
// Mark: one LIST of the bucket and a GET of every kept manifest. A
// narinfo's NAR URL and references come from a kept manifest entry when
// the listed ETag equals the MD5 of the narinfo text that push recorded
// (so the object is exactly what the manifest describes); every other
// narinfo is read with a GET (Nix's narinfo format,
// src/libstore/nar-info.cc): those pushed without a root, by other tools,
// before the kept manifests, or garbage. The live set
// is the closure, over narinfo References, of the kept manifests' paths
// and of every narinfo younger than Grace (a push in flight that has not
// recorded its root yet); a manifest entry's own references are followed
// too (the cross-check). A live narinfo keeps its URL's NAR and its .ls.
// Fail closed: a manifest or narinfo that cannot be read or parsed, or a
// key under roots/ that is not a manifest, stops gc before it deletes
// anything, and says why. A bucket with narinfos and no root at all is
// refused too (that would delete everything; use erase).
//
// Sweep, in two phases (rustic's delayed delete): an unreachable object
// older than Grace is first condemned, recorded in gc/condemned/<time>.json;
// a later run deletes it only when it was condemned at least Grace ago,
// is still unreachable, and has not been written since it was condemned
// (a re-upload by a racing push revives it). A narinfo reachable from one
// that survives survives too, and so does its NAR. Deletion order keeps
// Nix's closure invariant at every instant: narinfos first, referrers
// before their references, then NARs and listings, in batched
// DeleteObjects. Unfinished multipart uploads older than Grace are
// aborted (S3 servers that list uploads by prefix; MinIO lists them only
// by exact key, so there the abandoned uploads of killed pushes are not
// found).
//
// Concurrency: gc holds the exclusive lock of package gc/lock from before
// its LIST to after its last delete; pushes hold a shared one, so a push
// never skips a narinfo that gc is about to delete. Grace protects pushes
// by clients that take no lock (nix copy), except in the window between
// gc's LIST and its delete.
package gc
