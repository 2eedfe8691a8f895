//go:build !linux

package lock

// processSpace is unknown outside Linux: locks are judged by age only.
func processSpace() string { return "" }

// processGone is never sure outside Linux.
func processGone(int) bool { return false }

// holderGone is never sure outside Linux.
func holderGone(int, uint64) bool { return false }

// selfStart is unknown outside Linux.
func selfStart() uint64 { return 0 }
