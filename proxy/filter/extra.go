package filter

// What the compress and cache filters (SPEC §13, issue 17) need from the
// core beyond filter.go. Each is small; the core implements or calls them in
// both front-ends.
//
// Rules the core follows for every route with a chain (the filters rely on
// them; they add to the comments in filter.go without changing them):
//
//  1. Lazy head. The core sends the response head only when the first Write,
//     Flush or Close reaches the dst it passed to Chain.Body (net/http's
//     ResponseWriter behaves so already). Header changes a BodyWriter makes
//     through the Response view before then are sent: compress decides on a
//     body of unknown length after seeing up to min_bytes of it.
//  2. Body always. When Chain.HasBody, the core calls Chain.Body for every
//     forwarded response, also when it has no body (204, 304, a HEAD), and
//     ends the writer it got with Close when the body ended as framed, or
//     with AbortBody when it did not (see AbortBody).
//  3. Answers keep their Date. An Answer whose Header has a Date field is
//     sent with that Date, not a second one; a cached answer carries the
//     origin's Date and an Age. An Answer with status 1xx, 204 or 304 is sent
//     without Content-Length and body; to a HEAD request an Answer is sent
//     with the Content-Length of its Body and no body. No ResponseFilter or
//     BodyFilter runs on an answer. Answer.Body may be shared by concurrent
//     answers (a cached body): the core only reads it.
//  4. Finish. After an exchange ends in any way (answer sent, upstream
//     error, client gone), the core calls Chain.Finish once.

// HeaderLister is implemented by the core's Response view: the cache stores
// every header field of a response, which Header(name) alone cannot list.
type HeaderLister interface {
	// EachHeader calls fn for every header field of the response as it
	// stands (after the changes made through the view), in order, one call
	// per value, with the name as received.
	EachHeader(fn func(name, value string))
}

// ResponseReplacer is a filter that may answer instead of the upstream once
// the upstream's response head is known: the cache turns a 304 to its own
// revalidation into the stored response (RFC 9111 §4.3.4), and a 5xx into a
// stale stored response (stale-if-error, RFC 5861).
type ResponseReplacer interface {
	// Replace returns nil to let the response go on, or the answer to send
	// instead; the core then discards the upstream body (draining or
	// closing the upstream connection as it would for a client that left)
	// and sends the answer as it sends a RequestFilter's answer: no
	// ResponseFilter or BodyFilter runs on it.
	Replace(r Request, w Response) *Answer
}

// Replace runs the ResponseReplacers among the response filters, in the
// order ResponseFilters run (last written first), and returns the first
// answer. The core calls it when the upstream's response head arrived,
// before Chain.Response, and also for the core's own error answers to a
// forwarded request (502, 504), with w describing that answer, so that a
// stale response can stand in for an unreachable upstream.
func (c *Chain) Replace(r Request, w Response) *Answer {
	if c == nil {
		return nil
	}
	for i := len(c.response) - 1; i >= 0; i-- {
		if rr, ok := c.response[i].(ResponseReplacer); ok {
			if a := rr.Replace(r, w); a != nil {
				return a
			}
		}
	}
	return nil
}

// Aborter is a BodyWriter that must learn that the body was cut off (the
// upstream connection broke, the framing came up short, the client left).
// The cache then drops what it collected instead of storing a partial body;
// compress releases its encoder without writing a trailer that would make
// the cut-off body look complete.
type Aborter interface {
	Abort()
}

// AbortBody ends a writer returned by Chain.Body whose body was cut off:
// each layer that implements Aborter is aborted, the others closed. The
// core calls it instead of Close.
func AbortBody(w BodyWriter) {
	for w != nil {
		s, ok := w.(*stacked)
		if !ok {
			endAborted(w)
			return
		}
		endAborted(s.BodyWriter)
		w = s.below
	}
}

func endAborted(w BodyWriter) {
	if a, ok := w.(Aborter); ok {
		a.Abort()
		return
	}
	_ = w.Close()
}

// Finisher is a RequestFilter that holds per-request state beyond the
// answer (the cache's collapsed-request leadership) and must learn when the
// exchange ended, however it ended.
type Finisher interface {
	Finish(r Request)
}

// Finish tells every Finisher among the request filters that the exchange
// ended. The core calls it exactly once per request whose chain ran
// Chain.Request, after the answer was sent or the exchange failed.
func (c *Chain) Finish(r Request) {
	if c == nil {
		return
	}
	for _, f := range c.request {
		if fin, ok := f.(Finisher); ok {
			fin.Finish(r)
		}
	}
}
