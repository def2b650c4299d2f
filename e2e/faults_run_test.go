package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// run plays one case of the matrix and returns what went wrong. It runs on
// its own goroutine: it reports by returning, never through t.
func (e *faultEnv) run(fc *faultCase) (errs []string) {
	defer func() { // a panic here would end the whole test binary
		if r := recover(); r != nil {
			errs = append(errs, fmt.Sprintf("the case panicked: %v", r))
		}
	}()
	if fc.client != nil {
		return fc.client.run(e, fc)
	}
	errorf := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	want := fc.fault.want(fc.method)
	cl, err := dialRaw(e.addr)
	if err != nil {
		return []string{err.Error()}
	}
	defer cl.Close()

	if fc.reused {
		if !e.warm(fc, cl, errorf) {
			return errs
		}
		time.Sleep(150 * time.Millisecond) // let the last warm-up's connection go back to the pool
	}

	// The fault request.
	tag := caseID(fc, "x")
	if err := cl.send(faultRequest(fc, tag)); err != nil {
		return append(errs, fmt.Sprintf("sending the request: %v", err))
	}
	resp, rerr := cl.read(strings.TrimSuffix(fc.method, "-chunked"), 15*time.Second)
	if !pollUntil(5*time.Second, func() bool { return allIdle(fc.live) }) {
		errorf("the backend's script did not finish within 5s")
	}
	// A resend may still be on its way to a backend (the client can have
	// its answer first): give it time to arrive before counting.
	time.Sleep(300 * time.Millisecond)
	execs := arrivalsOf(fc.live, tag)
	got := classify(resp, rerr, fc.method, tag)
	if !slices.ContainsFunc(want.outcomes, func(o outcome) bool {
		return o.status == got.status && o.kind == got.kind && o.exec == len(execs)
	}) {
		errorf("got %v ×%d (%s), want one of %v", got, len(execs), describe(resp, rerr), want.outcomes)
	}
	// A retry goes to the other instance, except where staleResendOK.
	if len(execs) == 2 && execs[0].Instance == execs[1].Instance &&
		!(want.staleResendOK && execs[0].Reused && !execs[1].Reused) {
		errorf("the retry went to the same instance %s, want the other one", execs[0].Instance)
	}
	if fc.reused && len(execs) > 0 && !execs[0].Reused {
		errorf("the request went out on a new upstream connection, want the warmed, idle one")
	}
	if resp != nil {
		errs = append(errs, answerProblems(resp, fc.method)...)
		if want.check != nil && got.kind == "relayed" {
			if p := want.check(resp); p != "" {
				errorf("%s", p)
			}
		}
	}

	// The client connection: still usable, or closed.
	state := "closed"
	if rerr == nil {
		state = cl.after(300 * time.Millisecond)
	}
	switch {
	case got.kind == "relayed" && state != "quiet":
		errorf("client connection after a complete answer: got %s, want it open and quiet", state)
	case got.kind == "error" && state != "quiet" && state != "closed":
		errorf("client connection after ferry's %d: got %s, want it quiet or closed", got.status, state)
	case got.kind == "cut" && state != "closed":
		errorf("client connection after a cut answer: got %s, want it closed", state)
	}
	if len(fc.live) == 0 { // nothing can answer: the rest is about connections to live instances
		if p := e.released(fc.service); p != "" {
			errorf("%s", p)
		}
		return errs
	}
	if state == "quiet" {
		next := caseID(fc, "n")
		if p := e.ownAnswer(cl, fc, next); p != "" {
			errorf("the next request on the same client connection: %s", p)
		}
	}

	e.checkUpstream(fc, execs, want, errorf)
	if p := e.released(fc.service); p != "" {
		errorf("%s", p)
	}
	return errs
}

// checkUpstream sends follow-ups on new client connections, which reach
// both instances, and checks what became of the upstream connections:
// none poisoned reused, the clean one back in the pool, the broken one
// never used again, the hung one closed.
func (e *faultEnv) checkUpstream(fc *faultCase, execs []arrival, want faultWant, errorf func(string, ...any)) {
	for i := range 3 {
		fl, err := dialRaw(e.addr)
		if err != nil {
			errorf("%v", err)
			break
		}
		if p := e.ownAnswer(fl, fc, caseID(fc, "f"+strconv.Itoa(i))); p != "" {
			errorf("follow-up request %d: %s", i, p)
		}
		fl.Close()
	}
	for _, b := range fc.live {
		for _, a := range b.Arrivals() {
			if a.Poisoned {
				errorf("request %s reached %s on connection %d after that connection carried bytes that answer no request (want it closed, never reused)",
					a.Tag, a.Instance, a.Conn)
			}
		}
	}
	if len(execs) > 0 {
		// "yes" is about the connection of the exchange that answered (the
		// retry's, if any), "no" about the one the fault happened on.
		first, last := execs[0], execs[len(execs)-1]
		switch {
		case want.pooled == "yes" && connOf(fc.live, last).Requests == last.Seq:
			errorf("the upstream connection of a clean exchange was not reused by the follow-ups, want it back in the pool")
		case want.pooled == "no" && connOf(fc.live, first).Requests > first.Seq:
			errorf("the upstream connection of a broken exchange carried a later request, want it closed")
		}
		if want.hungClosed {
			if !pollUntil(5*time.Second, func() bool { return connOf(fc.live, first).PeerClosed }) {
				errorf("ferry did not close the upstream connection it gave up on within 5s")
			}
		}
	}
}

// warm sends GETs until every live instance has served one, so that the
// fault request goes out on a pooled connection.
func (e *faultEnv) warm(fc *faultCase, cl *rawClient, errorf func(string, ...any)) bool {
	for i := 0; i < 4; i++ {
		if p := e.ownAnswer(cl, fc, caseID(fc, "w"+strconv.Itoa(i))); p != "" {
			errorf("warm-up request %d: %s", i, p)
			return false
		}
		if !slices.ContainsFunc(fc.live, func(b *rawBackend) bool { return len(b.Arrivals()) == 0 }) {
			return true
		}
	}
	errorf("four warm-up requests did not reach every instance")
	return false
}

// ownAnswer sends a plain GET with tag on cl and checks the answer is the
// backend's answer to that request.
func (e *faultEnv) ownAnswer(cl *rawClient, fc *faultCase, tag string) string {
	if err := cl.send(rawGet("/"+fc.service+"/ok", tag)); err != nil {
		return fmt.Sprintf("sending: %v", err)
	}
	resp, err := cl.read("GET", 10*time.Second)
	if err != nil || resp.Status != 200 || string(resp.Body) != "own:"+tag {
		return fmt.Sprintf("got %s, want 200 %q", describe(resp, err), "own:"+tag)
	}
	return ""
}

// verdict is what the client got, in the terms of outcome.
type verdict struct {
	status int
	kind   string
}

func (v verdict) String() string { return fmt.Sprintf("%d %s", v.status, v.kind) }

// classify tells ferry's own answers from relayed ones: a relayed answer
// carries the tag's body (or none for HEAD, 204 and 304).
func classify(r *rawResponse, err error, method, tag string) verdict {
	switch {
	case r == nil:
		return verdict{0, "none"}
	case !r.Complete:
		return verdict{r.Status, "cut"}
	case r.Status == 502 || r.Status == 504:
		return verdict{r.Status, "error"}
	}
	want := "own:" + tag
	if method == "HEAD" || r.Status == 204 || r.Status == 304 {
		want = ""
	}
	if string(r.Body) != want {
		return verdict{r.Status, fmt.Sprintf("wrong body %q", r.Body)}
	}
	return verdict{r.Status, "relayed"}
}

// answerProblems checks what RFC 9110 and 9112 say of any answer: no
// Transfer-Encoding or Content-Length on 1xx, none of Transfer-Encoding on
// 204 and 304, never both Content-Length and Transfer-Encoding, one
// Content-Length at most, and ferry's own errors short and well framed.
func answerProblems(r *rawResponse, method string) []string {
	var out []string
	for i, h := range r.InfoHeads {
		l := strings.ToLower(h)
		if strings.Contains(l, "\ntransfer-encoding:") || strings.Contains(l, "\ncontent-length:") {
			out = append(out, fmt.Sprintf("the %d answer has framing fields: %q", r.Informational[i], h))
		}
	}
	te, cls := r.Count("Transfer-Encoding"), r.Count("Content-Length")
	if te > 0 && (r.Status == 204 || r.Status == 304) {
		out = append(out, fmt.Sprintf("the %d answer carries Transfer-Encoding: %q", r.Status, r.Head))
	}
	if te > 0 && cls > 0 {
		out = append(out, fmt.Sprintf("the answer has both Content-Length and Transfer-Encoding: %q", r.Head))
	}
	if cls > 1 {
		out = append(out, fmt.Sprintf("the answer has %d Content-Length fields: %q", cls, r.Head))
	}
	if (r.Status == 502 || r.Status == 504) && method != "HEAD" && r.Complete {
		if len(r.Body) == 0 || len(r.Body) > 512 || r.Get("Content-Length") != strconv.Itoa(len(r.Body)) {
			out = append(out, fmt.Sprintf("ferry's %d: got head %q body %q, want a short body with its Content-Length", r.Status, r.Head, r.Body))
		}
	}
	return out
}

// describe renders an answer for a failure message.
func describe(r *rawResponse, err error) string {
	if r == nil {
		return fmt.Sprintf("no answer (%v)", err)
	}
	s := fmt.Sprintf("%d, body %q", r.Status, r.Body)
	if r.Informational != nil {
		s = fmt.Sprintf("1xx %v then %s", r.Informational, s)
	}
	if err != nil {
		s += fmt.Sprintf(", cut: %v", err)
	}
	return s
}

func allIdle(bs []*rawBackend) bool {
	for _, b := range bs {
		if !b.Idle() {
			return false
		}
	}
	return true
}

// arrivalsOf lists the executions of the request tagged tag, in order.
func arrivalsOf(bs []*rawBackend, tag string) []arrival {
	var out []arrival
	for _, b := range bs {
		for _, a := range b.Arrivals() {
			if a.Tag == tag {
				out = append(out, a)
			}
		}
	}
	return out
}

func connOf(bs []*rawBackend, a arrival) connState {
	for _, b := range bs {
		if b.name == a.Instance {
			return b.Conn(a.Conn)
		}
	}
	return connState{}
}

// released checks that ferry holds nothing in flight for service: the
// instances' in_flight in /v1/upstreams. (The service's
// ferry_proxy_requests_in_flight is checked for every case at once when the
// lane ends: a scrape per case costs more than the rest of the case.)
func (e *faultEnv) released(service string) string {
	var last string
	ok := pollUntil(5*time.Second, func() bool {
		last = ""
		var a upstreamsAnswer
		if err := getJSON(e.f.AdminURL+"/v1/upstreams", &a); err != nil {
			last = err.Error()
			return false
		}
		for _, s := range a.Services {
			if s.Name == service {
				for _, i := range s.Instances {
					if i.InFlight != 0 {
						last += fmt.Sprintf(" instance %s in_flight %d;", i.ID, i.InFlight)
					}
				}
			}
		}
		return last == ""
	})
	if !ok {
		return "counters not released within 5s:" + last
	}
	return ""
}

func getJSON(url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
