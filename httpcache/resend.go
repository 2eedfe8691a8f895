package httpcache

import "time"

// ResendError is the error of a PUT whose body is a stream (a NAR, of
// unknown length) that failed transiently (a broken connection, a stall,
// a 5xx or 429 answer) after part of the stream was sent: the request is
// not retried, since the stream cannot be read again, but the caller may
// PUT the same object again with the stream started over, as long as
// RetryFor has not passed since its first such failure (push does, for a
// NAR).
// It wraps the request's error, and so s3cache.ErrUnreachable: a caller
// that does not resend fails as for any unreachable server.
type ResendError struct {
	err error
	// RetryFor is the retry budget of the Bucket (Options.Net.RetryFor):
	// how long after its first failure an upload may still be resent.
	RetryFor time.Duration
}

func (e *ResendError) Error() string { return e.err.Error() }

// Unwrap returns the request's error.
func (e *ResendError) Unwrap() error { return e.err }
