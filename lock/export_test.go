package lock

import "context"

// Refresh refreshes l once, as its refresher does every Options.Refresh.
func (l *Lock) Refresh(ctx context.Context) error { return l.refresh(ctx) }

// RefresherDone is closed when l's refresher has stopped (after Release,
// or once the lock is lost).
func (l *Lock) RefresherDone() <-chan struct{} { return l.done }

// ProcessStart is holderGone's reading of a process's start time.
var ProcessStart = processStart
