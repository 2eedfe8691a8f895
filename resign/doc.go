// Package resign re-signs the narinfos already in a binary cache: it adds
// one signature per given secret key (key rotation: the cache's clients
// move to a new key without a new push) and removes the signatures of
// retired key names, without touching any NAR.
//
// A signature is a promise about a path's content (the fingerprint of
// ValidPathInfo::fingerprint in Nix's src/libstore/path-info.cc: store
// path, NarHash, NarSize, references), so Run adds one only to a narinfo it
// can vouch for: one that carries a valid signature by a trusted key
// (Options.TrustedKeys, and the public halves of Options.Keys), or, with
// Options.Deep, whose NAR it downloaded and re-hashed to the narinfo's
// NarHash and NarSize (verify.CheckNAR). Deep vouches for the narinfo
// describing the bytes the cache serves, not for who built them. Any other
// narinfo that would gain a signature is left alone and listed in
// Result.Unvouched: whoever can write one narinfo into the bucket must not
// get it signed by the new key. Removing signatures needs no vouching.
//
// Run is idempotent: a narinfo that already carries a valid signature by
// every key and none by a removed name is not rewritten (ed25519
// signatures are deterministic, so a narinfo is never re-signed into
// different text), and a second run writes nothing. A narinfo is rewritten
// with its other fields and signatures as they were, with the narinfo
// Content-Type (push.PutNarInfo). Its ETag changes, so a root manifest no
// longer vouches for it (package roots): gc, stats and verify then read it
// with a GET. It is also new to gc (package gc): younger than the grace,
// it and its closure are kept, and a condemned one is revived.
//
// Other writers may hold the shared lock too (push, verify --repair,
// another Run): before it writes a narinfo, Run checks with a HEAD that
// its ETag is still the one it read, and otherwise reads and decides
// again, so that it does not undo a repair's new URL or another key's
// signature. Without conditional PUTs (which Garage may lack), a write
// landing between that HEAD and Run's PUT is still lost: a window of one
// round trip.
//
// Run holds the shared cache lock (package lock) while it writes, as push
// does, and checks it before each narinfo it writes: a gc never deletes a
// narinfo's NAR or references while Run writes that narinfo back.
package resign
