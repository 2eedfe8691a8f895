// Package watch is `nixbucket watch`: the long-running pusher that drains
// the local queue (package queue) into a binary cache.
//
// One process drains a queue (queue.LockDrainer); at start it requeues
// what a killed predecessor left in flight. It then loops: wait until an
// entry is due (a cheap read of the queue every PollInterval), wait
// BatchWait more to gather the entries of a burst of builds, claim up to
// BatchSize of them and push them, with their closure, through the normal
// push pipeline (package push: signing, the shared cache lock, closure
// order, one presence check per batch). Entries are marked done only once
// the push returned, so their narinfos are written; a kill -9 before that
// leaves them in flight, and the next drainer's requeue pushes them again,
// finding what was finished present.
//
// A path no longer valid in the local store (garbage-collected since it
// was queued) is failed at once. A failed push is retried with exponential
// backoff (RetryBase doubling up to RetryMax), and given up after
// MaxAttempts: its entries are failed with the last error, visible in
// `nixbucket queue` until `queue retry`.
//
// With a root name, each batch records its own root manifest (package
// roots), naming the batch's paths as top level: a stream of batches is a
// stream of manifests, so keep them with gc --keep-within.
//
// Cancelling Run's context stops claiming; the batch in flight may finish
// for StopGrace, after which it is cancelled and its entries requeued.
// Each batch logs one line.
package watch
