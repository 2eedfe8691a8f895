// Package gc collects the garbage of a binary cache bucket: the narinfos,
// NARs, .ls listings, build logs and realisations that no kept root
// reaches, safely beside pushes.
// It follows the two cache-wide protocols every writer follows: it keeps
// what the root manifests of package roots name, and it works under the
// exclusive lock of package lock while pushes hold shared ones.
//
// Run reads as its phases, and the files are named after them: list (one
// LIST of the bucket, then every narinfo's NAR and references), retain
// (which root manifests to keep; reading them), mark (the live closure),
// decide (what to condemn, what to delete and in which order) and sweep
// (the deletions and the condemnation records). All but sweep make the
// plan, where a dry run and Inspect stop.
//
// Retention (restic's forget, applied per root name to the manifests of
// package roots): keep the newest KeepLast manifests and those younger
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
// too (the cross-check). A live narinfo keeps its URL's NAR, its .ls, the
// build log of its Deriver (log/<drv base name>; a live .drv keeps its
// own) and the realisations
// (realisations/<drv hash>!<output>.doi) whose outPath it is (logs.go).
// For that, the realisations older than the grace are read. A narinfo
// known from a manifest that records derivers ("derivers": true) has its
// Deriver from the entry; those known only from older manifests, which
// record none, are read when their name is an old log's derivation's
// name, or it and -<output> (Nix names outputs so), so that no log is
// condemned while a live narinfo names its derivation. Other keys under
// log/ and realisations/ are left alone.
// Fail closed: a manifest, narinfo or realisation that cannot be read or parsed, or a
// key under roots/ that is not a manifest, stops gc before it deletes
// anything, and says why. A bucket with narinfos and no root at all is
// refused too (that would delete everything; use erase).
//
// Upstream (push --skip-signed-by): a path left to an upstream cache has
// no narinfo here, so gc never needs it: a live narinfo's reference to it
// reaches nothing, and a manifest's upstream entry keeps nothing. The
// upstream records under upstream/ are kept, not
// collected: they are tiny, one per push that left a referenced path
// upstream, and verify and stats read them to tell such a reference from
// a missing one (`erase --prefix upstream/` removes them all).
//
// Sweep, in two phases (rustic's delayed delete): an unreachable object
// older than Grace is first condemned, recorded in gc/condemned/<time>.json;
// a later run deletes it only when it was condemned at least Grace ago,
// is still unreachable, and has not been written since it was condemned
// (a re-upload by a racing push revives it). Condemnation times are whole
// seconds, rounded down, so that this holds on servers whose LastModified
// has whole seconds only (AWS, versitygw). A narinfo reachable from one
// that survives survives too, and so does its NAR. Deletion order keeps
// Nix's closure invariant at every instant: realisations first, then
// narinfos, referrers before their references, then NARs, listings and
// logs, in DeleteObjects
// batches of at most 1000 keys, the lock checked before each. Unfinished
// multipart uploads older than Grace are aborted (S3 servers that list
// uploads by prefix; MinIO lists them only by exact key, so there the
// abandoned uploads of killed pushes are not found).
//
// Time: every comparison with "now" (grace, retention, condemnation) uses
// the server's clock, which stamps LastModified: read once from a Date
// header (lock.Clock) and advanced by the local clock's passing, raised to
// the newest LastModified listed. A gc machine whose clock is hours off
// therefore neither deletes young objects nor takes live locks for stale.
//
// Concurrency: gc holds the exclusive lock (package lock) from before
// its LIST to after its last delete, and checks it before every delete
// batch; pushes hold a shared one and check it before every narinfo they
// write, so a push never skips a narinfo that gc is about to delete, and
// a push or gc that lost its lock (`nixbucket unlock --all`, a stall past
// the stale timeout) stops. A push uploads its NARs while it takes the
// lock: gc never deletes an object younger than the grace or rewritten
// since it was condemned, and a push whose lock had to wait for a gc
// uploads again under it. Grace protects pushes by clients that take no
// lock (nix copy, push --no-lock), except in the window between gc's LIST
// and its delete.
//
// Inspect is a dry run that also returns what it read; package stats
// reports from it, so its "reclaimable" is this planner's decision.
package gc
