package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok\n"))
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // a refused connection

	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{"2xx", srv.URL + "/ok", false},
		{"503", srv.URL + "/readyz", true},
		{"timeout", srv.URL + "/slow", true},
		{"refused", closed.URL, true},
		{"bad url", "http://[::1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(tt.url, 100*time.Millisecond)
			if (err != nil) != tt.wantErr {
				t.Fatalf("check(%s) = %v, want error %v", tt.url, err, tt.wantErr)
			}
		})
	}
}
