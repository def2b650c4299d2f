package e2e

import (
	"fmt"
	"strings"
	"time"
)

// The upstream faults of the failure-path matrix (faults_test.go), each
// with what a careful proxy guarantees for it (SPEC §11;
// docs/forwarding-faults.md explains every row). A fault applies to the
// first execution of a request; a retry of it, on the other instance, is
// answered normally, so that a retry shows as a 200 with two executions.

// upstreamFault is one way an upstream misbehaves.
type upstreamFault struct {
	name    string
	methods []string // nil: GET, HEAD and POST
	// instances: "two" raw backends (the default), "dead+live" (one port
	// that refuses connections), "dead+dead".
	instances string
	newOnly   bool // cannot be warmed: no reused variant
	// chunkedPost adds a POST whose body is chunked (streamed, never
	// replayable; the fast lane hands such uploads to net/http), where the
	// retry policy is what the fault is about.
	chunkedPost bool
	slow        bool      // the case needs response_timeout = 1s (hang, stall)
	script      rawScript // what the backend does with the request
	want        func(method string) faultWant
}

// faultWant is the guarantee for one fault and method.
type faultWant struct {
	outcomes []outcome // any one of them is correct
	// pooled: whether the upstream connection that carried the last
	// execution must go back to the pool ("yes"), must never carry
	// another request ("no"), or either ("any").
	pooled string
	// hungClosed: the proxy must close the connection it gave up on.
	hungClosed bool
	// staleResendOK: an idempotent request whose reused connection failed
	// before any answer may be resent once on a new connection to the same
	// instance (the upstream may have closed it as it was reused, as
	// http.Transport assumes). Never after a timeout (SPEC §11).
	staleResendOK bool
	check         func(r *rawResponse) string // an extra check of a relayed answer
}

// outcome is one correct result: the final status, how many times the
// backends executed the request, and how the answer is made.
type outcome struct {
	status int
	exec   int
	kind   string // "relayed" (complete, the backend's), "error" (ferry's own), "cut" (truncated, client connection closed)
}

func (o outcome) String() string { return fmt.Sprintf("%d %s ×%d", o.status, o.kind, o.exec) }

func relayed(status, exec int) outcome  { return outcome{status, exec, "relayed"} }
func ownError(status, exec int) outcome { return outcome{status, exec, "error"} }
func cut(exec int) outcome              { return outcome{200, exec, "cut"} }

func one(o ...outcome) []outcome { return o }

// failedBeforeHead: the request was written, nothing came back. An
// idempotent request is retried on the other instance; a POST is not.
func failedBeforeHead(m string) faultWant {
	if isPost(m) {
		return faultWant{outcomes: one(ownError(502, 1)), pooled: "any"}
	}
	return faultWant{outcomes: one(relayed(200, 2)), pooled: "yes", staleResendOK: true}
}

// brokenAfterHead: the head came, the body broke. Once bytes reached the
// client nothing can be retried: the client sees a cut body and a closed
// connection (or a 502 if the proxy had not sent the head yet).
func brokenAfterHead(m string) faultWant {
	switch {
	case m == "HEAD": // the head is the whole answer
		return faultWant{outcomes: one(relayed(200, 1)), pooled: "any"}
	case isPost(m):
		return faultWant{outcomes: one(cut(1), ownError(502, 1)), pooled: "no"}
	}
	return faultWant{outcomes: one(cut(1), ownError(502, 1), relayed(200, 2)), pooled: "no"}
}

// malformed: a response no careful proxy may relay as it is. It answers
// 502, or retries an idempotent request on the other instance.
func malformed(m string) faultWant {
	if isPost(m) {
		return faultWant{outcomes: one(ownError(502, 1)), pooled: "no"}
	}
	return faultWant{outcomes: one(ownError(502, 1), relayed(200, 2)), pooled: "no"}
}

// isPost: POST, or POST-chunked (the same request with a chunked body).
func isPost(m string) bool { return strings.HasPrefix(m, "POST") }

func relayedOnce(status int, pooled string) func(string) faultWant {
	return func(string) faultWant { return faultWant{outcomes: one(relayed(status, 1)), pooled: pooled} }
}

// chunk frames s as one chunk and the last chunk.
func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s) }

func ownBody(a *arrival) string { return "own:" + a.Tag }

// head200 is a 200 head announcing the tag's body; extra fields go first.
func head200(a *arrival, extra string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n", extra, len(ownBody(a)))
}

// bodyFor is the tag's body, or nothing for HEAD.
func bodyFor(a *arrival) string {
	if a.Method == "HEAD" {
		return ""
	}
	return ownBody(a)
}

var upstreamFaults = []upstreamFault{
	{name: "refuse-all", instances: "dead+dead", newOnly: true,
		want: func(string) faultWant { return faultWant{outcomes: one(ownError(502, 0)), pooled: "any"} }},
	{name: "refuse-one", instances: "dead+live", chunkedPost: true,
		want: relayedOnce(200, "yes")},
	{name: "reset-before-head", chunkedPost: true, script: func(c *rawConn, a *arrival) bool { return c.reset() },
		want: failedBeforeHead},
	{name: "close-without-answer", chunkedPost: true, script: func(c *rawConn, a *arrival) bool { return c.close() },
		want: failedBeforeHead},
	{name: "reset-after-head", script: func(c *rawConn, a *arrival) bool {
		c.write(head200(a, ""))
		c.sleep(100 * time.Millisecond)
		return c.reset()
	}, want: brokenAfterHead},
	{name: "reset-mid-body", methods: []string{"GET", "POST"}, script: func(c *rawConn, a *arrival) bool {
		c.write(head200(a, "") + ownBody(a)[:3])
		c.sleep(100 * time.Millisecond)
		return c.reset()
	}, want: brokenAfterHead},
	{name: "hang-before-head", slow: true, chunkedPost: true, script: func(c *rawConn, a *arrival) bool {
		return true // no answer: read on, until the proxy gives up and closes
	}, want: func(m string) faultWant {
		w := faultWant{outcomes: one(ownError(504, 1)), pooled: "any", hungClosed: true}
		if !isPost(m) { // a timeout after the request was written: retried like any failure
			w.outcomes = one(relayed(200, 2), ownError(504, 1))
		}
		return w
	}},
	{name: "stall-mid-body", methods: []string{"GET", "POST"}, slow: true, script: func(c *rawConn, a *arrival) bool {
		// Longer than response_timeout, which bounds the wait for the head only.
		c.write(head200(a, "") + ownBody(a)[:3])
		c.sleep(1500 * time.Millisecond)
		c.write(ownBody(a)[3:])
		return true
	}, want: relayedOnce(200, "yes")},
	{name: "bytes-past-content-length-late", methods: []string{"GET", "POST"}, script: func(c *rawConn, a *arrival) bool {
		c.write(okResponse(a.Method, a.Tag))
		c.sleep(100 * time.Millisecond)
		c.poison()
		c.write(poisonResponse)
		return true
	}, want: relayedOnce(200, "no")},
	{name: "bytes-past-content-length", methods: []string{"GET", "POST"}, script: func(c *rawConn, a *arrival) bool {
		c.poison()
		c.write(okResponse(a.Method, a.Tag) + poisonResponse)
		return true
	}, want: relayedOnce(200, "no")},
	{name: "body-after-head-answer-late", methods: []string{"HEAD"}, script: func(c *rawConn, a *arrival) bool {
		c.write(head200(a, ""))
		c.sleep(100 * time.Millisecond)
		c.poison()
		c.write(ownBody(a) + poisonResponse)
		return true
	}, want: relayedOnce(200, "no")},
	{name: "head-answered-with-body", methods: []string{"HEAD"}, script: func(c *rawConn, a *arrival) bool {
		c.poison()
		c.write(head200(a, "") + ownBody(a) + poisonResponse)
		return true
	}, want: relayedOnce(200, "no")},
	{name: "leftovers-after-chunked-body", methods: []string{"GET", "POST"}, script: func(c *rawConn, a *arrival) bool {
		c.poison()
		c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(ownBody(a)) + poisonResponse)
		return true
	}, want: relayedOnce(200, "no")},
	{name: "content-length-and-chunked", script: func(c *rawConn, a *arrival) bool {
		c.poison() // ambiguous framing: the connection must not be trusted again
		msg := "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
		if a.Method != "HEAD" {
			msg += chunk(ownBody(a))
		}
		c.write(msg)
		return true
	}, want: func(m string) faultWant {
		// RFC 9112 §6.3: Transfer-Encoding wins, and the message ought to
		// be handled as an error: relayed without Content-Length, or 502.
		w := malformed(m)
		w.outcomes = append(w.outcomes, relayed(200, 1))
		return w
	}},
	{name: "bad-chunk-size", methods: []string{"GET", "POST"}, script: func(c *rawConn, a *arrival) bool {
		c.poison()
		c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + ownBody(a) + "\r\n0\r\n\r\n")
		return true
	}, want: func(m string) faultWant {
		w := malformed(m)
		w.outcomes = append(w.outcomes, cut(1))
		return w
	}},
	{name: "two-content-lengths", script: func(c *rawConn, a *arrival) bool {
		c.poison()
		n := len(ownBody(a))
		c.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n%s", n, n+1, bodyFor(a)))
		return true
	}, want: malformed}, // RFC 9112 §6.3 (5): a proxy MUST close the connection and answer 502
	{name: "bare-lf-head", script: func(c *rawConn, a *arrival) bool {
		c.write(strings.ReplaceAll(head200(a, "Content-Type: text/plain\r\n"), "\r\n", "\n") + bodyFor(a))
		return true
	}, want: relayedOnce(200, "any")}, // RFC 9112 §2.2: a recipient MAY take LF for CRLF; nginx does
	{name: "http2-status-line", script: func(c *rawConn, a *arrival) bool {
		c.write(strings.Replace(head200(a, ""), "HTTP/1.1", "HTTP/2.0", 1) + bodyFor(a))
		return true
	}, want: relayedOnce(200, "any")},
	{name: "odd-status-line-spacing", script: func(c *rawConn, a *arrival) bool {
		c.write(strings.Replace(head200(a, ""), "HTTP/1.1 200 OK", "HTTP/1.1  200  OK", 1) + bodyFor(a))
		return true
	}, want: relayedOnce(200, "any")},
	{name: "300-response-fields", script: func(c *rawConn, a *arrival) bool {
		var sb strings.Builder
		for i := range 300 {
			fmt.Fprintf(&sb, "X-N: %d\r\n", i)
		}
		c.write(head200(a, sb.String()) + bodyFor(a))
		return true
	}, want: func(string) faultWant {
		return faultWant{outcomes: one(relayed(200, 1)), pooled: "any", check: func(r *rawResponse) string {
			if n := r.Count("X-N"); n != 300 {
				return fmt.Sprintf("got %d X-N fields, want 300", n)
			}
			return ""
		}}
	}},
	{name: "103-then-final", script: func(c *rawConn, a *arrival) bool {
		c.write("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + okResponse(a.Method, a.Tag))
		return true
	}, want: relayedOnce(200, "yes")},
	{name: "100-then-final", script: func(c *rawConn, a *arrival) bool {
		c.write("HTTP/1.1 100 Continue\r\n\r\n" + okResponse(a.Method, a.Tag))
		return true
	}, want: relayedOnce(200, "yes")},
	{name: "204-chunked", script: func(c *rawConn, a *arrival) bool {
		c.write("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n")
		return true
	}, want: relayedOnce(204, "any")},
	{name: "204-chunked-with-last-chunk", script: func(c *rawConn, a *arrival) bool {
		c.poison() // a 204 ends with its head (RFC 9112 §6.3): the rest is no answer
		c.write("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + poisonResponse)
		return true
	}, want: relayedOnce(204, "no")},
	{name: "304-with-body", script: func(c *rawConn, a *arrival) bool {
		c.poison()
		c.write(fmt.Sprintf("HTTP/1.1 304 Not Modified\r\nContent-Length: %d\r\n\r\n%s%s", len(ownBody(a)), ownBody(a), poisonResponse))
		return true
	}, want: relayedOnce(304, "no")},
}
