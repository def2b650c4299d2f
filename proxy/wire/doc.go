// Package wire is ferry's HTTP/1.1 codec: request and response heads parsed
// in place (no allocation, no policy), the request framing tracker the
// connection guard judges every head with, canonical paths (RFC 3986), and
// the writers of status lines, header fields and ferry's own error answers.
// It knows nothing of routes, instances or retries: what a head means for
// forwarding is decided by the layers above.
package wire
