// Package store reads the local Nix store natively: path info (NarHash,
// NarSize, references, deriver, signatures, content address) from the
// nix-daemon socket through the worker protocol when a daemon listens, else
// from the SQLite database opened read-only; and derivation outputs.
//
// It never spawns nix. The store directory comes from NIX_STORE_DIR, the state
// directory from NIX_STATE_DIR, the daemon socket from NIX_DAEMON_SOCKET_PATH
// and the choice of back end from NIX_REMOTE, as in Nix itself
// (src/libstore/globals.cc, src/libstore/store-api.cc).
//
// # The database (DB)
//
// <state>/db/db.sqlite, schema version 10 (src/libstore/schema.sql), in WAL
// mode. ValidPaths(id, path, hash "sha256:<base16>", registrationTime (unix
// seconds), deriver, narSize, ultimate, sigs (space-separated), ca) holds one
// row per valid path; Refs(referrer, reference) the references by id, a
// self-reference included; DerivationOutputs(drv, id, path) the statically
// known outputs of each valid .drv. The queries are Nix's own
// (src/libstore/local-store.cc). The database is opened with mode=ro so that
// it never holds a lock Nix waits on; see OpenDB for the immutable fallback.
//
// # The daemon worker protocol (Daemon)
//
// Integers are u64 little-endian, strings a u64 length then the bytes padded
// with zeros to 8, lists and sets a u64 count then the items
// (src/libstore/worker-protocol.hh). The client sends 0x6e697863 and reads
// 0x6478696f and the daemon's version (1<<8 | minor), then sends its own
// version; the lower one is used. The client sends two obsolete zeros (CPU
// affinity, reserveSpace); the daemon sends its Nix version (≥ 1.33) and
// whether it trusts the client (≥ 1.35), then a log stream. Each operation
// is an op code and its arguments, answered by a log stream — STDERR_NEXT
// lines, START_ACTIVITY/STOP_ACTIVITY/RESULT, ending with STDERR_LAST or
// STDERR_ERROR — and, after STDERR_LAST, the reply
// (src/libstore/remote-store.cc, src/libstore/daemon.cc). Used here:
// QueryPathInfo (26), QueryValidPaths (31), QueryDerivationOutputMap (41).
//
// # Store paths
//
// A store path is <store dir>/<32 nix32 characters>-<name>
// (src/libstore/path.cc); storepath.Check validates one for any store directory,
// Resolve turns a command-line argument (a result link, a file inside a
// store path) into one.
package store
