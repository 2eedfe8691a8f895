// Package remove takes store paths out of a binary cache bucket: a leaked
// path, or one that must not be served any more.
//
// Run deletes the paths' narinfos, which is what makes a path visible to
// Nix, and their .ls listings; it never deletes a NAR. A removed path's
// NAR is left to gc's two phases (package gc): Run records it as
// condemned (gc.Condemn) when no narinfo left names it, so the first gc
// run a grace later deletes it, if it is then still unreachable and
// unchanged. A NAR another narinfo still names is not even condemned.
//
// Referrers: a path that other narinfos refer to (their References; a
// self-reference does not count) is refused with ErrReferenced, which
// lists them: removing it would leave their closures incomplete. With
// Options.WithReferrers they are removed too, and theirs, transitively.
// Deletions keep Nix's closure invariant at every instant, also when the
// process is killed between two requests: the set removed is closed
// under referrers, and it is deleted in layers, every narinfo in a batch
// after all its referrers' batches (Kahn's algorithm over the
// references), so no visible narinfo ever names a missing one.
//
// Reading the cache is gc's (gc.Inspect): one LIST of the bucket, the root
// manifests, and a GET of each narinfo no manifest entry vouches for
// (same ETag as the text the push recorded). A listed narinfo that cannot
// be read or parsed might refer to a path being removed, so Run then
// deletes nothing (fail closed), as gc does.
//
// Root manifests (package roots) are not rewritten: a removed path that a
// manifest lists is removed anyway (a leaked path must go), and Report.Roots
// says which roots list it. gc and verify skip a manifest entry whose
// narinfo is gone (it vouches for nothing and keeps nothing alive).
//
// Concurrency: Run holds the exclusive lock (package lock), as gc does,
// from before its LIST to after its last delete, and checks it before
// every delete batch, so no push that takes the lock writes a referrer
// meanwhile. Writers that take no lock (nix copy, push --no-lock) are not
// held off: one that writes a referrer of a removed path between the LIST
// and the delete leaves that narinfo with a missing reference (verify
// finds it; rm it or push again).
package remove
