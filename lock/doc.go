// Package lock is the cache lock, a protocol that every process writing to a
// cache follows, so that garbage collection and pushes keep apart: push
// takes the shared lock and checks it before each narinfo it writes, and so
// do the other writers that add to the cache or change its roots (`verify
// --repair`, `roots pin|unpin|rm`); gc takes the exclusive lock and checks
// it before each delete batch, and `erase` takes it too. Writers that take
// no lock (nix copy, push --no-lock) are protected by gc's grace only. The
// protocol is restic's (restic internal/restic/lock.go) without conditional
// PUT, which Garage may lack.
//
// A lock is an object locks/<kind>-<id>.json (layout.LocksDir), kind
// "shared" (a push) or "exclusive" (a gc). Its body is JSON naming the host,
// pid and command, for people, and the process space (boot id and PID
// namespace) and the start time of the holder's process (pid_start), which
// tell the holder from a later process given the same PID (object.go). The
// protocol reads keys and LastModified, so a check costs one LIST. To
// acquire (acquire.go): list the locks; if a live one conflicts (an
// exclusive conflicts with any lock, a shared one with an exclusive), wait
// and retry; else write our lock, wait Settle, list again, and back out
// (delete ours, wait, retry) on any conflict. Two writers that both proceed
// would each have listed after both writes, and so have seen each other: at
// least one backs out.
//
// The holder refreshes its lock every Refresh the restic way (refresh.go):
// it writes the lock under a new key, then checks that the old object is
// still there, and only then deletes the old one. If the old one is gone
// (removed by `nixbucket unlock`), it deletes the new one: the lock is lost,
// and Check says so. A key is never written twice, so a removal is never
// undone, and the new object exists before the old one is confirmed: a
// competitor that lists after the removal of the old object sees the new
// one. Readers must not hold on to a lock's key: it changes at each refresh
// (Lock.Key is the current one), and a listing may show a holder twice, or
// (a listing that is not one snapshot) neither key.
//
// A lock is stale when its LastModified is older than StaleAfter by the
// server's clock (Clock: never the local one, which may be hours off), or
// when its holder ran on this host in our process space and that process is
// gone: no process has its PID, or the one that has it started at another
// time (restic's rule, for pushes killed on a CI machine). Stale locks are
// ignored by Acquire (stale.go) and removed by RemoveStale (`nixbucket
// unlock`, unlock.go).
//
// Shared locks do not wait for each other, so a steady stream of overlapping
// pushes could keep a gc waiting for ever. So an exclusive Acquire that has
// to wait for shared locks writes a waiting object locks/waiting-<id>.json
// (waiting.go), rewritten while it waits and removed when it stops waiting,
// and a shared Acquire does not write its lock while a live one is there
// (writer preference). A push past that point is not held back; a waiting
// object left by a killed gc is stale after WaitingStaleAfter.
//
// A holder calls Check (check.go) before each destructive or dependent step
// (gc before each delete batch, push before each narinfo it writes). The
// safety argument: a competitor that finds our lock gone (removed by
// `nixbucket unlock`) still waits Settle before it acts, and a HEAD that
// found our object, or a write of it, that started at t means the object
// was there after t, so no competitor acts before t+Settle.
// Check passes only when such a confirmation started less than Settle/2
// before the call: no competitor acts until Settle/2 after the call, time
// for the step that follows.
// The confirmations are made off the caller's path (confirm.go): while the
// holder calls Check, a confirmer HEADs the object on a schedule, several
// at once when the round trip is long, so that one started less than
// Settle/2 ago has come back whenever a Check comes (at any round trip
// under Settle/2); Check then makes no request, and otherwise waits for the
// confirmer's next results. A HEAD counts from its start, never its end;
// one that finds the object gone loses the lock. The confirmer stops when
// no Check came for 10 × Settle, and at Release: an idle holder makes no
// requests but its refreshes.
package lock
