package lock

import "context"

// Refresh refreshes l once, as its refresher does every Options.Refresh.
func (l *Lock) Refresh(ctx context.Context) error { return l.refresh(ctx) }

// RefresherDone is closed when l's refresher has stopped (after Release,
// or once the lock is lost).
func (l *Lock) RefresherDone() <-chan struct{} { return l.done }

// ProcessStart is holderGone's reading of a process's start time.
var ProcessStart = processStart

// MaxConfirming bounds the confirmer's HEADs in flight.
const MaxConfirming = maxConfirming

// ConfirmerDone returns a channel closed when the confirmer running now
// stops, and whether one runs.
func (l *Lock) ConfirmerDone() (<-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conf.done, l.conf.running
}

// ConfirmStats returns the HEADs the confirmer made and the Checks that
// had to wait for one.
func (l *Lock) ConfirmStats() (heads, waited int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conf.heads, l.conf.waited
}
