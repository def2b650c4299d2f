// Command backend is a tiny HTTP service for the demo and the benchmarks: it
// answers every path with its own name, so round robin is visible, and serves
// /health for Consul's and ferry's checks.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "backend", "name reported in every answer")
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
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s answered %s %s (host %s, x-forwarded-for %s)\n",
			*name, r.Method, r.URL.RequestURI(), r.Host, strings.Join(r.Header.Values("X-Forwarded-For"), ", "))
	})

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
