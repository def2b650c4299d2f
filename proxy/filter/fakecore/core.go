package fakecore

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/filter"
)

// Core plays the forwarding core's part for tests: it runs Chain around a
// forward to Upstream (a base URL such as an httptest server's), following
// the rules of proxy/filter (filter.go and extra.go). Safe for concurrent
// use once set up.
type Core struct {
	Chain    *filter.Chain
	Upstream string       // base URL: scheme://host:port
	Client   *http.Client // nil: a client that neither follows redirects nor decompresses
	Route    string       // the route name the views report
	// FlushEachRead flushes the body writer after every read from the
	// upstream (the core flushes when the upstream pauses; a read that
	// returned is the nearest a test fake gets to a pause).
	FlushEachRead bool
}

var defaultClient = &http.Client{
	Transport:     &http.Transport{DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (c *Core) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return defaultClient
}

// ServeHTTP forwards req through the chain.
func (c *Core) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	rv := NewRequest(req, c.Route)
	defer c.Chain.Finish(rv)
	if a := c.Chain.Request(req.Context(), rv); a != nil {
		writeAnswer(rw, req, a)
		return
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, c.Upstream+req.URL.RequestURI(), req.Body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadGateway)
		return
	}
	if req.ContentLength > 0 {
		out.ContentLength = req.ContentLength
	}
	out.Header = rv.Out
	out.Host = req.Host
	resp, err := c.client().Do(out)
	if err != nil {
		view := NewTestResponse(http.StatusBadGateway, "Content-Type", "text/plain; charset=utf-8")
		if a := c.Chain.Replace(rv, view); a != nil {
			writeAnswer(rw, req, a)
			return
		}
		http.Error(rw, "502 Bad Gateway", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()

	h := rw.Header()
	for k, vs := range resp.Header {
		h[k] = append([]string(nil), vs...)
	}
	if resp.ContentLength >= 0 && req.Method != http.MethodHead && h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	view := &Response{Code: resp.StatusCode, H: h}
	if a := c.Chain.Replace(rv, view); a != nil {
		for k := range h {
			delete(h, k)
		}
		writeAnswer(rw, req, a)
		return
	}
	c.Chain.Response(rv, view)

	dst := &lazyHead{rw: rw, status: resp.StatusCode}
	var bw filter.BodyWriter
	if c.Chain.HasBody() {
		bw = c.Chain.Body(rv, view, dst)
	}
	if bw == nil {
		dst.head()
		bw = passThrough{dst}
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := bw.Write(buf[:n]); werr != nil {
				filter.AbortBody(bw)
				panic(http.ErrAbortHandler)
			}
			if c.FlushEachRead {
				_ = bw.Flush()
				if dst.sent {
					dst.Flush()
				}
			}
		}
		if errors.Is(err, io.EOF) {
			_ = bw.Close()
			dst.head() // an empty body: the head still goes out
			return
		}
		if err != nil { // cut off: never framed as complete
			filter.AbortBody(bw)
			panic(http.ErrAbortHandler)
		}
	}
}

// lazyHead sends the response head at the first Write or Flush (rule 1 of
// extra.go), so header changes made by body writers until then are sent.
type lazyHead struct {
	rw     http.ResponseWriter
	status int
	sent   bool
}

func (l *lazyHead) head() {
	if !l.sent {
		l.sent = true
		l.rw.WriteHeader(l.status)
	}
}

func (l *lazyHead) Write(p []byte) (int, error) {
	l.head()
	return l.rw.Write(p)
}

// Flush sends what was written; the stacked writers call it through
// their own Flush only on themselves, so Core flushes the wire here too.
func (l *lazyHead) Flush() {
	l.head()
	if f, ok := l.rw.(http.Flusher); ok {
		f.Flush()
	}
}

// writeAnswer sends a filter's answer following rule 3 of extra.go.
func writeAnswer(rw http.ResponseWriter, req *http.Request, a *filter.Answer) {
	h := rw.Header()
	for _, f := range a.Header {
		h.Add(f[0], f[1])
	}
	noBody := a.Status < 200 || a.Status == http.StatusNoContent || a.Status == http.StatusNotModified
	if noBody {
		h.Del("Content-Length")
	} else {
		h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	}
	rw.WriteHeader(a.Status)
	if !noBody && !strings.EqualFold(req.Method, http.MethodHead) {
		_, _ = rw.Write(a.Body)
	}
}

// passThrough is the body writer of a response no filter transforms.
type passThrough struct{ dst *lazyHead }

func (p passThrough) Write(b []byte) (int, error) { return p.dst.Write(b) }
func (p passThrough) Flush() error                { return nil }
func (p passThrough) Close() error                { return nil }
