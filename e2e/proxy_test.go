package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLargeUploadAndStreamedDownload(t *testing.T) {
	agent := consultest.Start(t)
	const size = 5 << 20
	b := startBackend(t, "files-1", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost: // answer the upload's digest and length
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprintf(w, "%x %d", h.Sum(nil), n)
		default: // stream a deterministic download in chunks, without Content-Length
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			for sent := 0; sent < size; sent += len(chunk) {
				w.Write(chunk)
				w.(http.Flusher).Flush()
			}
		}
	})
	register(t, agent.Client(), "user", b)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/files", 1)

	payload := make([]byte, size)
	rand.Read(payload)
	resp, err := client.Post(f.URL+"/api/user/upload", "application/octet-stream", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x %d", sha256.Sum256(payload), size)
	if got := readAll(t, resp); resp.StatusCode != 200 || got != want {
		t.Fatalf("upload: got %d %q, want 200 %q", resp.StatusCode, got, want)
	}

	resp, err = client.Get(f.URL + "/api/user/download")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: got %d bytes, err %v; want %d", n, err, size)
	}
	wantSum := sha256.Sum256(bytes.Repeat([]byte("0123456789abcdef"), size/16))
	if !bytes.Equal(h.Sum(nil), wantSum[:]) {
		t.Fatalf("download: content differs")
	}
}

func TestHeaderSemantics(t *testing.T) {
	agent := consultest.Start(t)
	got := make(chan *http.Request, 1)
	b := startBackend(t, "echo-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/user/42" {
			got <- r.Clone(r.Context())
		}
		w.Header().Set("Connection", "X-Upstream-Hop")
		w.Header().Set("X-Upstream-Hop", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Kept", "yes")
		io.WriteString(w, "ok")
	})
	register(t, agent.Client(), "user", b)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 1)

	req, _ := http.NewRequest("GET", f.URL+"/api/user/42?q=1&r=two", nil)
	req.Host = "shop.example"
	req.Header.Set("Connection", "X-Client-Hop")
	req.Header.Set("X-Client-Hop", "drop me")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Te", "trailers")
	req.Header.Set("X-Custom", "kept")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	in := <-got
	seen, seenHost, seenURI := in.Header, in.Host, in.RequestURI

	checks := []struct{ what, got, want string }{
		{"Host", seenHost, "shop.example"},
		{"request URI", seenURI, "/api/user/42?q=1&r=two"},
		{"X-Custom", seen.Get("X-Custom"), "kept"},
		{"X-Client-Hop (nominated by Connection)", seen.Get("X-Client-Hop"), ""},
		// An untrusted peer's X-Forwarded-For is replaced (trusted_proxies is empty).
		{"X-Forwarded-For", seen.Get("X-Forwarded-For"), "127.0.0.1"},
		{"X-Forwarded-Host", seen.Get("X-Forwarded-Host"), "shop.example"},
		{"X-Forwarded-Proto", seen.Get("X-Forwarded-Proto"), "http"},
		{"response X-Upstream-Hop", resp.Header.Get("X-Upstream-Hop"), ""},
		{"response Keep-Alive", resp.Header.Get("Keep-Alive"), ""},
		{"response X-Kept", resp.Header.Get("X-Kept"), "yes"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
	if strings.Contains(strings.ToLower(seen.Get("Connection")), "x-client-hop") {
		t.Errorf("Connection header forwarded: %q", seen.Get("Connection"))
	}
}

// TestTrustedProxyAppends: with the peer in trusted_proxies, its
// X-Forwarded-For is appended to and its X-Forwarded-Proto kept.
func TestTrustedProxyAppends(t *testing.T) {
	agent := consultest.Start(t)
	got := make(chan http.Header, 1)
	b := startBackend(t, "echo-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/user/42" {
			got <- r.Header.Clone()
		}
		io.WriteString(w, "ok")
	})
	register(t, agent.Client(), "user", b)
	f := startFerry(t, agent.HTTPAddr, "trusted_proxies = [\"127.0.0.1/32\"]\n"+basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 1)

	req, _ := http.NewRequest("GET", f.URL+"/api/user/42", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	seen := <-got
	if v := seen.Get("X-Forwarded-For"); v != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For: got %q, want %q", v, "203.0.113.7, 127.0.0.1")
	}
	if v := seen.Get("X-Forwarded-Proto"); v != "https" {
		t.Errorf("X-Forwarded-Proto: got %q, want the trusted proxy's https", v)
	}
}
