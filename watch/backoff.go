package watch

import "time"

// backoff is the delay before attempt n+1 of a batch whose n-th attempt
// failed (n >= 1): base, doubled per attempt, at most max.
func backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
