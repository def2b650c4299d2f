package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawBackend is an upstream instance that speaks HTTP/1.1 by hand, so that
// a test can make it misbehave in ways no HTTP library allows: reset or
// close at a chosen moment, hang, send bytes past a response's framing,
// answer with broken framing. It records every request it received, per
// TCP connection, with the request line, Host and body exactly as they
// arrived, and what became of each connection, so that a test can tell how
// many times a request was executed and whether a connection went back to
// the proxy's pool.
//
// Its request parser is lenient on purpose (bare LF, any white space, both
// Content-Length and Transfer-Encoding): a proxy's duty is to refuse what
// it must not forward, and the backend must record whatever came through.
type rawBackend struct {
	name   string
	ln     net.Listener
	script rawScript

	wg     sync.WaitGroup // the accept loop and one goroutine per connection
	closed atomic.Bool
	busy   atomic.Int32 // scripts still running (a hang does not count)

	mu       sync.Mutex
	conns    []*rawConn
	arrivals []arrival
}

// rawScript answers one request on c. It may write anything, close or
// reset c, or leave it without an answer; it returns false to stop
// reading c (after a close or a reset).
type rawScript func(c *rawConn, r *arrival) bool

// arrival is one request as the backend received it.
type arrival struct {
	Instance string
	Conn     int // the connection's number on this backend, from 1
	Seq      int // the request's number on its connection, from 1
	// Poisoned and Reused describe the connection when the request came:
	// a script had written bytes a proxy must not take for an answer, or
	// the connection had carried an earlier request.
	Poisoned, Reused bool

	Method, Target, Proto string
	Host                  string // the first Host field's value ("" if none)
	HostCount             int
	Header                [][2]string
	Body                  []byte
	Raw                   []byte // the head as received
	Tag                   string // see tagOf
	First                 bool   // no earlier request with this tag reached this backend's group
}

// rawConn is one accepted connection.
type rawConn struct {
	ID   int
	be   *rawBackend
	conn *net.TCPConn
	br   *bufio.Reader

	mu         sync.Mutex
	requests   int
	poisoned   bool
	peerClosed time.Time // when the proxy closed it (EOF or reset seen)
	selfClosed bool      // the backend closed or reset it
}

// tagSeen is shared by the instances of one service, so that "First" means
// the first execution anywhere: a retry on the other instance is not first.
type tagSeen struct {
	mu   sync.Mutex
	seen map[string]int
}

func (s *tagSeen) mark(tag string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	s.seen[tag]++
	return s.seen[tag] == 1
}

// startRawBackend listens on a free loopback port and serves script until
// the test ends.
func startRawBackend(t testing.TB, name string, seen *tagSeen, script rawScript) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{name: name, ln: ln, script: script}
	b.wg.Add(1)
	go b.accept(seen)
	t.Cleanup(b.stop)
	return b
}

func (b *rawBackend) Addr() string { return b.ln.Addr().String() }
func (b *rawBackend) Port() int    { return b.ln.Addr().(*net.TCPAddr).Port }

// stop closes the listener and every connection, and waits for the
// goroutines.
func (b *rawBackend) stop() {
	b.closed.Store(true)
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.conn.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *rawBackend) accept(seen *tagSeen) {
	defer b.wg.Done()
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		c := &rawConn{ID: len(b.conns) + 1, be: b, conn: nc.(*net.TCPConn), br: bufio.NewReaderSize(nc, 64<<10)}
		b.conns = append(b.conns, c)
		b.wg.Add(1)
		b.mu.Unlock()
		if b.closed.Load() { // stop ran between Accept and the append
			nc.Close()
		}
		go c.serve(seen)
	}
}

// serve reads requests until the proxy closes the connection, the script
// ends it or the backend stops. Nothing bounds the wait for the next
// request: a connection idles for as long as the proxy keeps it, which is
// what the tests observe; stop unblocks it.
func (c *rawConn) serve(seen *tagSeen) {
	defer c.be.wg.Done()
	for {
		a, err := readRawRequest(c.br)
		if err != nil {
			c.mu.Lock()
			if !c.selfClosed {
				c.peerClosed = time.Now()
			}
			c.mu.Unlock()
			c.conn.Close()
			return
		}
		c.mu.Lock()
		c.requests++
		a.Instance, a.Conn, a.Seq = c.be.name, c.ID, c.requests
		a.Poisoned, a.Reused = c.poisoned, c.requests > 1
		c.mu.Unlock()
		a.First = seen.mark(a.Tag)
		c.be.mu.Lock()
		c.be.arrivals = append(c.be.arrivals, *a)
		c.be.mu.Unlock()
		c.be.busy.Add(1)
		keep := c.be.script(c, a)
		c.be.busy.Add(-1)
		if !keep {
			return
		}
	}
}

// write sends s; errors are the proxy's business (it may have gone).
func (c *rawConn) write(s string) { io.WriteString(c.conn, s) }

// poison marks the connection as carrying bytes that are no answer to any
// request: a proxy must never reuse it.
func (c *rawConn) poison() { c.mu.Lock(); c.poisoned = true; c.mu.Unlock() }

// reset aborts the connection with a TCP RST (SO_LINGER 0).
func (c *rawConn) reset() bool {
	c.mu.Lock()
	c.selfClosed = true
	c.mu.Unlock()
	c.conn.SetLinger(0)
	c.conn.Close()
	return false
}

// close ends the connection with a FIN.
func (c *rawConn) close() bool {
	c.mu.Lock()
	c.selfClosed = true
	c.mu.Unlock()
	c.conn.Close()
	return false
}

// sleep waits d, or less if the backend stops.
func (c *rawConn) sleep(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && !c.be.closed.Load() {
		time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
	}
}

// Arrivals returns every request received so far.
func (b *rawBackend) Arrivals() []arrival {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]arrival(nil), b.arrivals...)
}

// connState is what became of one connection.
type connState struct {
	ID         int
	Requests   int
	Poisoned   bool
	PeerClosed bool
	SelfClosed bool
}

func (b *rawBackend) Conn(id int) connState {
	b.mu.Lock()
	c := b.conns[id-1]
	b.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return connState{ID: c.ID, Requests: c.requests, Poisoned: c.poisoned,
		PeerClosed: !c.peerClosed.IsZero(), SelfClosed: c.selfClosed}
}

// Conns returns the state of every connection accepted so far.
func (b *rawBackend) Conns() []connState {
	b.mu.Lock()
	n := len(b.conns)
	b.mu.Unlock()
	out := make([]connState, 0, n)
	for id := 1; id <= n; id++ {
		out = append(out, b.Conn(id))
	}
	return out
}

// Idle reports whether no script is running.
func (b *rawBackend) Idle() bool { return b.busy.Load() == 0 }

var errBadRequest = errors.New("rawbackend: unparsable request")

// readRawRequest reads one request leniently: lines may end in LF, header
// names may hold anything but a colon, a Transfer-Encoding naming chunked
// wins over Content-Length (the first Content-Length counts otherwise).
func readRawRequest(br *bufio.Reader) (*arrival, error) {
	var raw bytes.Buffer
	var lines []string
	for {
		line, err := br.ReadString('\n')
		raw.WriteString(line)
		if err != nil {
			return nil, err
		}
		if raw.Len() > 1<<20 {
			return nil, errBadRequest
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(lines) == 0 {
				continue // a stray CRLF between requests (RFC 9112 §2.2)
			}
			break
		}
		lines = append(lines, line)
	}
	a := &arrival{Raw: raw.Bytes()}
	parts := strings.SplitN(lines[0], " ", 3)
	if len(parts) != 3 {
		return nil, errBadRequest
	}
	a.Method, a.Target, a.Proto = parts[0], parts[1], parts[2]
	a.Tag = tagOf(a.Target)
	length, chunked := int64(-1), false
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, errBadRequest
		}
		v = strings.Trim(v, " \t")
		a.Header = append(a.Header, [2]string{k, v})
		switch strings.ToLower(k) {
		case "host":
			if a.HostCount++; a.HostCount == 1 {
				a.Host = v
			}
		case "content-length":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && length < 0 {
				length = n
			}
		case "transfer-encoding":
			chunked = chunked || strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	var err error
	switch {
	case chunked:
		a.Body, err = readChunked(br)
	case length > 0:
		a.Body = make([]byte, length)
		_, err = io.ReadFull(br, a.Body)
	}
	return a, err
}

// readChunked decodes a chunked body and skips its trailer section.
func readChunked(br *bufio.Reader) ([]byte, error) {
	var body []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size := strings.TrimRight(line, "\r\n")
		if i := strings.IndexAny(size, "; \t"); i >= 0 {
			size = size[:i]
		}
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil || n < 0 || n > 16<<20 {
			return nil, errBadRequest
		}
		if n == 0 {
			for { // trailer fields until an empty line
				l, err := br.ReadString('\n')
				if err != nil {
					return nil, err
				}
				if strings.TrimRight(l, "\r\n") == "" {
					return body, nil
				}
			}
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, err
		}
		body = append(body, chunk...)
		if _, err := br.ReadString('\n'); err != nil {
			return nil, err
		}
	}
}

// tagOf names the request a test sent: the query's tag= value, or else
// the path segment after "/t/" (for requests whose query is under test).
func tagOf(target string) string {
	if v := queryValue(target, "tag"); v != "" {
		return v
	}
	if _, rest, ok := strings.Cut(target, "/t/"); ok {
		tag, _, _ := strings.Cut(rest, "/")
		return tag
	}
	return ""
}

// queryValue returns the raw value of key in target's query.
func queryValue(target, key string) string {
	_, q, ok := strings.Cut(target, "?")
	if !ok {
		return ""
	}
	for _, kv := range strings.Split(q, "&") {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// okResponse is a plain, well-framed answer whose body is the tag, so that
// a client can tell its own answer from anyone else's.
func okResponse(method, tag string) string {
	body := "own:" + tag
	head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", len(body))
	if method == "HEAD" {
		return head
	}
	return head + body
}

// poisonResponse is what a misbehaving backend sends late: a whole
// response, so that a proxy reusing the connection takes it for the next
// request's answer.
const poisonResponse = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"
