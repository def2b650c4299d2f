package core

// ClientBodyError is a failure to read the client's request body while
// forwarding it: the client reset the connection, paused longer than the
// read timeout, or sent more than the route's max_body_bytes. It is the
// client's fault: answered 4xx, never retried and never counted against the
// upstream. It is immutable and safe for concurrent use.
type ClientBodyError struct {
	Err error
}

// Error describes the failure.
func (e *ClientBodyError) Error() string {
	return "reading the client's request body: " + e.Err.Error()
}

// Unwrap returns the read error.
func (e *ClientBodyError) Unwrap() error { return e.Err }
