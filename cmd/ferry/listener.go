package main

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// endpoint is one of ferry's HTTP servers — the data plane or the admin API —
// whose address a reload may change. Moving it starts a new server on the new
// listener first, then drains the old one in the background (Shutdown within
// shutdown_timeout, then Close), so no request in flight is cut and the new
// address answers before the old one goes away. Safe for concurrent use.
type endpoint struct {
	name      string
	newServer func() server // a fresh server for every listener
	logger    hclog.Logger
	errs      chan error // the first unexpected Serve error; capacity 1

	mu  sync.Mutex
	srv server       // nil when not serving; guarded by mu
	ln  net.Listener // guarded by mu
	wg  sync.WaitGroup
}

// newEndpoint returns an endpoint serving nothing until move gives it a
// listener; newServer builds the server for each listener.
func newEndpoint(name string, newServer func() server, logger hclog.Logger) *endpoint {
	return &endpoint{name: name, newServer: newServer, logger: logger, errs: make(chan error, 1)}
}

// Addr returns the address being served, or "" when none.
func (e *endpoint) Addr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ln == nil {
		return ""
	}
	return e.ln.Addr().String()
}

// Errs receives the first error a server returned other than on shutdown.
func (e *endpoint) Errs() <-chan error { return e.errs }

// move makes ln the endpoint's listener (nil: serve nothing). A new server
// serves ln at once; the old server, if any, stops accepting and drains in
// the background within timeout, then closes.
func (e *endpoint) move(ln net.Listener, timeout time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, oldLn := e.srv, e.ln
	e.srv, e.ln = nil, nil
	if ln != nil {
		e.srv, e.ln = e.newServer(), ln
		e.serveLocked(e.srv, ln)
	}
	if old == nil {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := old.Shutdown(ctx); err != nil {
			e.logger.Warn("in-flight requests on the old address did not finish within shutdown_timeout; closing them",
				"endpoint", e.name, "address", oldLn.Addr().String(), "error", err)
			old.Close()
			return
		}
		e.logger.Info("old address drained and closed", "endpoint", e.name, "address", oldLn.Addr().String())
	}()
}

func (e *endpoint) serveLocked(s server, ln net.Listener) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := serve(s, ln); err != nil {
			select {
			case e.errs <- err:
			default:
			}
		}
	}()
}

// shutdown stops the current server gracefully within ctx (closing it when
// ctx ends first), then waits for every server the endpoint started,
// draining ones included. It reports whether ctx ended first.
func (e *endpoint) shutdown(ctx context.Context) error {
	e.mu.Lock()
	s := e.srv
	e.srv, e.ln = nil, nil
	e.mu.Unlock()
	var err error
	if s != nil {
		if err = s.Shutdown(ctx); err != nil {
			s.Close()
		}
	}
	e.wg.Wait()
	return err
}

// close closes the current server at once and waits for every server the
// endpoint started (draining ones finish within their own timeout).
func (e *endpoint) close() {
	e.mu.Lock()
	s := e.srv
	e.srv, e.ln = nil, nil
	e.mu.Unlock()
	if s != nil {
		s.Close()
	}
	e.wg.Wait()
}

// OpenConnections is the client connections the endpoint's current server
// holds open, when it counts them (the data plane's proxy.Server); 0
// otherwise. A server draining after a move is not counted.
func (e *endpoint) OpenConnections() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.srv.(interface{ OpenConnections() int64 }); ok {
		return c.OpenConnections()
	}
	return 0
}
