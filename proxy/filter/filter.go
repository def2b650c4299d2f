// Package filter is the contract between ferry's forwarding core and its
// route filters (SPEC §13): jwt, rate_limit, headers, compress, cache.
//
// A route's filters run in the order written. The core calls them at two
// places, the same for every front-end (the HTTP/1.1 fast lane and net/http):
//
//	request parsed → route matched → Chain.Request (each RequestFilter in
//	order; the first Answer stops the chain and is sent instead of
//	forwarding) → balancer pick → attempt loop → response head from
//	upstream → Chain.Response (each ResponseFilter in reverse order, as
//	Envoy's encoder filters run) → body through each BodyFilter's writer →
//	the front-end writes the answer.
//
// The views are interfaces so that each front-end can back them with what it
// already has (the fast lane's parsed fields, net/http's Header) and a route
// without filters pays nothing: the core does not build a view unless the
// route has a chain.
package filter

import (
	"context"
	"io"
)

// Request is a filter's view of the request on its way upstream. Header
// names are case-insensitive. Changes made through Set/Add/Del apply to what
// is sent upstream, not to what later filters read through Header: a filter
// reads the client's request.
type Request interface {
	Method() string
	Host() string     // the authority, without port normalisation
	Path() string     // canonical path (SPEC §6), before strip_prefix
	RawQuery() string // without '?', byte for byte as sent
	Route() string    // the route's name
	// ClientIP is the client's address after trusted_proxies (no port).
	ClientIP() string
	// Header is the first value of the named field, "" when absent.
	Header(name string) string
	// HeaderValues are every value of the named field in order.
	HeaderValues(name string) []string
	SetHeader(name, value string)
	AddHeader(name, value string)
	DelHeader(name string)
	// Set and Value carry per-request values from one filter to the next
	// (e.g. the jwt filter's verified claims for rate_limit's claim:NAME key).
	Set(key, value any)
	Value(key any) any
}

// Response is a filter's view of the upstream's response head.
type Response interface {
	Status() int
	Header(name string) string
	HeaderValues(name string) []string
	SetHeader(name, value string)
	AddHeader(name, value string)
	DelHeader(name string)
}

// Answer is a filter's own response, sent instead of forwarding (401, 403,
// 429, a cached response). Header fields are sent in order; the core adds
// Content-Length, Date and framing, and sends no body to a HEAD request.
type Answer struct {
	Status int
	Header [][2]string
	Body   []byte
}

// RequestFilter runs before the request is sent upstream. It returns nil to
// let the request go on, or the answer to send instead. ctx ends when the
// client leaves.
type RequestFilter interface {
	Request(ctx context.Context, r Request) *Answer
}

// ResponseFilter runs on the response head before it is sent to the client.
type ResponseFilter interface {
	Response(r Request, w Response)
}

// BodyFilter transforms or observes the response body. Body is called after
// every ResponseFilter ran; it returns a writer that the core writes the
// body (unframed) into and that writes its result to dst, or nil to leave the
// body alone. The core calls Flush on the writer when the upstream pauses
// (so that streamed responses are not held back) and Close at the end of the
// body. A BodyFilter that changes the body's length must delete
// Content-Length in Body (the core then frames the body itself).
type BodyFilter interface {
	Body(r Request, w Response, dst io.Writer) BodyWriter
}

// BodyWriter is a body transformation in progress.
type BodyWriter interface {
	io.Writer
	Flush() error
	Close() error
}

// Chain is a route's filters in the order written.
type Chain struct {
	Names    []string // for logs and metrics, in order
	request  []RequestFilter
	response []ResponseFilter
	body     []BodyFilter
}

// NewChain sorts filters by the places they run at; f may implement any of
// RequestFilter, ResponseFilter and BodyFilter.
func NewChain(names []string, filters []any) *Chain {
	c := &Chain{Names: names}
	for _, f := range filters {
		if rf, ok := f.(RequestFilter); ok {
			c.request = append(c.request, rf)
		}
		if rf, ok := f.(ResponseFilter); ok {
			c.response = append(c.response, rf)
		}
		if bf, ok := f.(BodyFilter); ok {
			c.body = append(c.body, bf)
		}
	}
	return c
}

// Empty reports whether the chain does nothing (a nil chain is empty).
func (c *Chain) Empty() bool {
	return c == nil || len(c.request)+len(c.response)+len(c.body) == 0
}

// Request runs the request filters in order and returns the first answer.
func (c *Chain) Request(ctx context.Context, r Request) *Answer {
	if c == nil {
		return nil
	}
	for _, f := range c.request {
		if a := f.Request(ctx, r); a != nil {
			return a
		}
	}
	return nil
}

// Response runs the response filters, last written first.
func (c *Chain) Response(r Request, w Response) {
	if c == nil {
		return
	}
	for i := len(c.response) - 1; i >= 0; i-- {
		c.response[i].Response(r, w)
	}
}

// HasBody reports whether any filter may transform the body.
func (c *Chain) HasBody() bool { return c != nil && len(c.body) > 0 }

// Body stacks the body filters' writers over dst and returns the writer to
// send the body into (nil: none applies). As with Response, the body passes
// the last written filter first: for [cache, compress] the upstream's bytes
// are compressed and the cache sees (and stores) what the client gets.
func (c *Chain) Body(r Request, w Response, dst io.Writer) BodyWriter {
	if c == nil {
		return nil
	}
	var top BodyWriter
	for i := range c.body {
		next := dst
		if top != nil {
			next = top
		}
		if bw := c.body[i].Body(r, w, next); bw != nil {
			top = &stacked{BodyWriter: bw, below: top}
		}
	}
	return top
}

// stacked flushes and closes the writers below it after itself.
type stacked struct {
	BodyWriter
	below BodyWriter
}

func (s *stacked) Flush() error {
	err := s.BodyWriter.Flush()
	if s.below != nil {
		if e := s.below.Flush(); err == nil {
			err = e
		}
	}
	return err
}

func (s *stacked) Close() error {
	err := s.BodyWriter.Close()
	if s.below != nil {
		if e := s.below.Close(); err == nil {
			err = e
		}
	}
	return err
}
