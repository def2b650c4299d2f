package e2e

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Client faults, the other half of the failure-path matrix: the client
// leaves, reads slowly or sends garbage. They run in TestFaultMatrix beside
// the upstream faults, on both front-ends, each with a service of its own.

// clientFault is one way a client misbehaves, with the backend's part.
type clientFault struct {
	name   string
	script rawScript // what the backend does with the request (nil: answer it)
	run    func(e *faultEnv, fc *faultCase) []string
}

// streamHead starts a chunked answer that then stays quiet, as an event
// stream or a long poll does.
const streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

// slowBody is what the slow client reads: 2 MiB, more than any socket
// buffer on the way holds, so that ferry must wait for the client.
var slowBody = bytes.Repeat([]byte("0123456789abcdef"), 128<<10)

var clientFaults = []clientFault{
	{name: "gone-waiting-for-head-GET", script: hang, run: func(e *faultEnv, fc *faultCase) []string {
		return e.leaveEarly(fc, rawGet("/"+fc.service+"/poll", "xgone"), "")
	}},
	{name: "gone-waiting-for-head-POST", script: hang, run: func(e *faultEnv, fc *faultCase) []string {
		return e.leaveEarly(fc, "POST /"+fc.service+"/poll?tag=xgone HTTP/1.1\r\nHost: ferry.test\r\nContent-Length: 5\r\n\r\nhello", "")
	}},
	{name: "gone-while-quiet-body-streams", script: func(c *rawConn, a *arrival) bool {
		c.write(streamHead + "9\r\ndata: 1\n\n\r\n")
		return true // then quiet: no more bytes, until the proxy closes
	}, run: func(e *faultEnv, fc *faultCase) []string {
		return e.leaveEarly(fc, rawGet("/"+fc.service+"/events", "xgone"), "data: 1")
	}},
	{name: "slow-reader", script: func(c *rawConn, a *arrival) bool {
		c.write("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(slowBody)) + "\r\n\r\n")
		c.conn.Write(slowBody)
		return true
	}, run: slowReader},
	{name: "malformed-request", run: func(e *faultEnv, fc *faultCase) []string {
		return e.refused(fc, "GET /"+fc.service+"/x?tag=xbad HTTP/1.1\r\nHost: ferry.test\r\nNo colon here\r\n\r\n", 400)
	}},
	{name: "body-cut-short", run: func(e *faultEnv, fc *faultCase) []string {
		return e.bodyCutShort(fc)
	}},
}

// hang leaves a request without an answer.
func hang(c *rawConn, a *arrival) bool { return true }

// leaveEarly sends raw, waits for the backend to have it (and for the
// client to have read want, if not empty), then closes the client
// connection: ferry must close the upstream connection within a bounded
// time and release every count (SPEC §11).
func (e *faultEnv) leaveEarly(fc *faultCase, raw, want string) (errs []string) {
	cl, err := dialRaw(e.addr)
	if err != nil {
		return []string{err.Error()}
	}
	if err := cl.send(raw); err != nil {
		cl.Close()
		return []string{err.Error()}
	}
	if !pollUntil(5*time.Second, func() bool { return len(arrivalsOf(fc.live, "xgone")) > 0 }) {
		cl.Close()
		return []string{"the request did not reach the backend within 5s"}
	}
	if want != "" {
		cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(got, []byte(want)) {
			n, err := cl.br.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				cl.Close()
				return []string{fmt.Sprintf("reading the stream: got %q, %v; want it to contain %q", got, err, want)}
			}
		}
	}
	left := time.Now()
	cl.Close()
	a := arrivalsOf(fc.live, "xgone")[0]
	if !pollUntil(5*time.Second, func() bool { return connOf(fc.live, a).PeerClosed }) {
		errs = append(errs, "the client left, and ferry had not closed the upstream connection 5s later")
	} else if d := time.Since(left); d > 5*time.Second {
		errs = append(errs, fmt.Sprintf("the upstream connection closed %v after the client left, want within 5s", d))
	}
	if p := e.released(fc.service); p != "" {
		errs = append(errs, p)
	}
	fl, err := dialRaw(e.addr)
	if err != nil {
		return append(errs, err.Error())
	}
	defer fl.Close()
	if p := e.ownAnswer(fl, fc, "fgone"); p != "" {
		errs = append(errs, "a new request after the client left: "+p)
	}
	return errs
}

// slowReader reads a 2 MiB answer in small sips: it must arrive whole, and
// the upstream connection go back to the pool.
func slowReader(e *faultEnv, fc *faultCase) (errs []string) {
	cl, err := dialRaw(e.addr)
	if err != nil {
		return []string{err.Error()}
	}
	defer cl.Close()
	if err := cl.send(rawGet("/"+fc.service+"/big", "xslow")); err != nil {
		return []string{err.Error()}
	}
	var got []byte
	buf := make([]byte, 32<<10)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := cl.c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil || bytes.HasSuffix(got, slowBody[len(slowBody)-64:]) && len(got) >= len(slowBody) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, body, _ := bytes.Cut(got, []byte("\r\n\r\n"))
	if !bytes.Equal(body, slowBody) {
		errs = append(errs, fmt.Sprintf("got %d bytes of body, want the %d sent, intact", len(body), len(slowBody)))
	}
	if p := e.ownAnswer(cl, fc, "nslow"); p != "" {
		errs = append(errs, "the next request on the same client connection: "+p)
	}
	a := arrivalsOf(fc.live, "xslow")
	if len(a) != 1 {
		return append(errs, fmt.Sprintf("got %d executions, want 1", len(a)))
	}
	for i := range 3 {
		fl, err := dialRaw(e.addr)
		if err != nil {
			return append(errs, err.Error())
		}
		if p := e.ownAnswer(fl, fc, "f"+strconv.Itoa(i)+"slow"); p != "" {
			errs = append(errs, p)
		}
		fl.Close()
	}
	if connOf(fc.live, a[0]).Requests == a[0].Seq {
		errs = append(errs, "the upstream connection of a slow but clean exchange was not reused, want it back in the pool")
	}
	if p := e.released(fc.service); p != "" {
		errs = append(errs, p)
	}
	return errs
}

// refused sends a request ferry must refuse itself: status, the connection
// closed, and nothing reaching the backend.
func (e *faultEnv) refused(fc *faultCase, raw string, status int) (errs []string) {
	cl, err := dialRaw(e.addr)
	if err != nil {
		return []string{err.Error()}
	}
	defer cl.Close()
	if err := cl.send(raw); err != nil {
		return []string{err.Error()}
	}
	resp, rerr := cl.read("GET", 5*time.Second)
	if resp == nil || resp.Status != status {
		errs = append(errs, fmt.Sprintf("got %s, want %d", describe(resp, rerr), status))
	}
	if st := cl.after(1 * time.Second); st != "closed" {
		errs = append(errs, fmt.Sprintf("client connection after the %d: got %s, want closed", status, st))
	}
	if n := len(fc.live[0].Arrivals()) + len(fc.live[1].Arrivals()); n != 0 {
		errs = append(errs, fmt.Sprintf("the backends got %d requests, want none", n))
	}
	return errs
}

// bodyCutShort announces 100 bytes of body, sends 10 and leaves. Whatever
// reached the backend, its connection must not go back to the pool (the
// request is incomplete), and the follow-ups get their own answers.
func (e *faultEnv) bodyCutShort(fc *faultCase) (errs []string) {
	cl, err := dialRaw(e.addr)
	if err != nil {
		return []string{err.Error()}
	}
	cl.send("POST /" + fc.service + "/upload?tag=xcut HTTP/1.1\r\nHost: ferry.test\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 10))
	time.Sleep(300 * time.Millisecond)
	cl.Close()
	time.Sleep(300 * time.Millisecond)
	if a := arrivalsOf(fc.live, "xcut"); len(a) != 0 {
		errs = append(errs, fmt.Sprintf("an incomplete request reached the backend as complete: %q", a[0].Raw))
	}
	for i := range 3 {
		fl, err := dialRaw(e.addr)
		if err != nil {
			return append(errs, err.Error())
		}
		if p := e.ownAnswer(fl, fc, "f"+strconv.Itoa(i)+"cut"); p != "" {
			errs = append(errs, fmt.Sprintf("follow-up request %d: %s", i, p))
		}
		fl.Close()
	}
	if p := e.released(fc.service); p != "" {
		errs = append(errs, p)
	}
	return errs
}
