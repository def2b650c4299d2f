// Command backend is a tiny HTTP service for the demo and the benchmarks: it
// answers every path with its own name, so round robin is visible, and serves
// /health for Consul's and ferry's checks.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

var client = &http.Client{Timeout: 10 * time.Second}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "backend", "name reported in every answer")
	call := flag.String("call", "", "a URL to call on every request (through the sidecar), whose answer is included")
	size := flag.Int("size", 0, "answer every request with a fixed body of this many bytes (for benchmarks; "+
		"a query parameter size=N overrides it per request, up to 1 MiB); 0: the descriptive answer")
	flag.Parse()

	var healthy atomic.Bool
	healthy.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// POST /admin/health?ok=false lets the demo show a failing check.
	mux.HandleFunc("POST /admin/health", func(w http.ResponseWriter, r *http.Request) {
		healthy.Store(r.URL.Query().Get("ok") != "false")
		fmt.Fprintf(w, "healthy=%v\n", healthy.Load())
	})
	if *size > 0 {
		mux.Handle("/", fixedBody(*size))
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			describe(w, r, *name, *call)
		})
	}

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("%s listening on %s", *name, *addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// describe answers with the backend's name and what it received, after
// calling call first when it is set.
func describe(w http.ResponseWriter, r *http.Request, name, call string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if call != "" {
		resp, err := client.Get(call)
		if err != nil {
			http.Error(w, name+": calling "+call+": "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		fmt.Fprintf(w, "%s answered %s %s, after calling %s:\n  ", name, r.Method, r.URL.RequestURI(), call)
		io.Copy(w, resp.Body)
		return
	}
	fmt.Fprintf(w, "%s answered %s %s (host %s, x-forwarded-for %s)\n",
		name, r.Method, r.URL.RequestURI(), r.Host, strings.Join(r.Header.Values("X-Forwarded-For"), ", "))
}

// maxBody caps the size=N query parameter.
const maxBody = 1 << 20

// fixedBody answers every request with n bytes (or the query's size=N), as
// cheaply as net/http allows: a body shared by all requests and an explicit
// Content-Length.
func fixedBody(n int) http.Handler {
	body := []byte(strings.Repeat("x", maxBody))
	def := strconv.Itoa(n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size, length := n, def
		if r.URL.RawQuery != "" {
			if s, err := strconv.Atoi(r.URL.Query().Get("size")); err == nil && s >= 0 && s <= maxBody {
				size, length = s, strconv.Itoa(s)
			}
		}
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{length}
		w.Write(body[:size])
	})
}
