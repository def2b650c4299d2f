package proxy

import (
	"net/http"
	"strconv"

	"github.com/ferry-proxy/ferry/proxy/core"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// httpSource is the net/http front-end's core.RequestSource.
type httpSource struct {
	r    *http.Request
	edge *core.Edge
}

func (s *httpSource) Method() string   { return s.r.Method }
func (s *httpSource) Host() string     { return s.r.Host }
func (s *httpSource) RawQuery() string { return s.r.URL.RawQuery }

func (s *httpSource) ClientIP() string {
	return s.edge.ClientIP(s.r.RemoteAddr, s.r.Header.Values("X-Forwarded-For"))
}

func (s *httpSource) HeaderValues(name string) []string {
	if http.CanonicalHeaderKey(name) == "Host" {
		return []string{s.r.Host}
	}
	return s.r.Header.Values(name)
}

// httpFilterRequest is one request's filter view in the net/http
// front-end, allocated per request (this front-end allocates per request
// anyway).
type httpFilterRequest struct {
	core.FilterRequest
	src httpSource
}

func newHTTPFilterRequest(r *http.Request, edge *core.Edge) *core.FilterRequest {
	q := &httpFilterRequest{src: httpSource{r: r, edge: edge}}
	q.Reset(&q.src)
	return &q.FilterRequest
}

// writeFilterAnswer writes a request filter's answer through net/http.
func writeFilterAnswer(w http.ResponseWriter, a *filter.Answer, closing bool) {
	h := w.Header()
	for _, f := range a.Header {
		if wire.ValidField(f[0], f[1]) {
			h.Add(f[0], f[1])
		}
	}
	h.Del("Transfer-Encoding")
	if closing {
		h.Set("Connection", "close")
	}
	noBody := a.Status == http.StatusNoContent || a.Status == http.StatusNotModified
	if noBody {
		h.Del("Content-Length")
	} else {
		h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	}
	w.WriteHeader(a.Status)
	if !noBody {
		w.Write(a.Body)
	}
}
