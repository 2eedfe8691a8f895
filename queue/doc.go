// Package queue is the local, crash-safe list of store paths waiting to be
// pushed: `nixbucket hook` (Nix's post-build-hook) appends to it in
// milliseconds, and `nixbucket watch` drains it.
//
// The queue is one SQLite database in WAL mode (the pure-Go driver), written
// with synchronous=FULL, so an entry Add returned for survives kill -9 and a
// power cut. Each path has at most one entry, in one of three states:
//
//	pending   waiting for a drainer (not before its NotBefore time, after a retry)
//	inflight  claimed by the drainer, being pushed
//	failed    given up on; `queue retry` makes it pending again
//
// A pushed entry is deleted (Done), and the time of the last success is
// kept. Only one drainer works on a queue at a time (LockDrainer); it
// requeues the in-flight entries a killed predecessor left (Requeue), so
// nothing claimed is ever lost: at worst it is pushed twice, and the second
// push finds it present.
package queue
