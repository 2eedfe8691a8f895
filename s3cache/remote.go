package s3cache

// RemoteError is a failure of the S3 server or of the network to it, after
// the retries: the server refused the request (access denied, no such
// bucket, any other error answer), could not be reached, or stopped
// answering (a stall, in a request or in a body being read). Its message
// is one line that names the endpoint. Callers match it with errors.As
// (the CLI exits 5 for it); errors.Is with ErrAccessDenied,
// ErrNoSuchBucket or ErrUnreachable tells which kind, where one applies.
// A missing object (ErrNotFound) and a cancelled context are not
// RemoteErrors.
type RemoteError struct {
	// Endpoint is the server's URL, or "AWS region R".
	Endpoint string

	msg   string
	kind  error // a sentinel, or nil
	cause error
}

// Error returns the one-line message, which names the endpoint.
func (e *RemoteError) Error() string { return e.msg }

// Unwrap returns the sentinel of its kind (if any) and the cause.
func (e *RemoteError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.kind, e.cause} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
