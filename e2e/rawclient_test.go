package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// A raw client: it writes exact bytes and reads answers by hand, so that a
// test sees what a careless client would trip on — a body on a HEAD answer,
// Transfer-Encoding on a 204, bytes after a response, a connection closed
// without warning.

// rawResponse is one final answer, with the 1xx heads that came before it.
type rawResponse struct {
	Informational []int // 1xx statuses relayed before the final one
	InfoHeads     []string
	Status        int
	Head          string // the final head as received
	Header        [][2]string
	Body          []byte
	// Complete: the body ended where its framing said (or the connection
	// closed a close-delimited body). A truncated body is not complete.
	Complete bool
	Err      error // the read error that cut the answer short, if any
}

// Get returns the first value of name ("" if absent); Count how many fields
// have it.
func (r *rawResponse) Get(name string) string {
	for _, h := range r.Header {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

func (r *rawResponse) Count(name string) int {
	n := 0
	for _, h := range r.Header {
		if strings.EqualFold(h[0], name) {
			n++
		}
	}
	return n
}

// rawClient is one client connection to a proxy.
type rawClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(addr string) (*rawClient, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawClient{c: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (rc *rawClient) Close() { rc.c.Close() }

// send writes raw within 5 s.
func (rc *rawClient) send(raw string) error {
	rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(rc.c, raw)
	return err
}

// read reads one final answer to a request with method, within wait. A nil
// response means no status line came at all; err says why.
func (rc *rawClient) read(method string, wait time.Duration) (*rawResponse, error) {
	rc.c.SetReadDeadline(time.Now().Add(wait))
	r := &rawResponse{}
	for {
		head, status, header, err := readHead(rc.br)
		if err != nil {
			if r.InfoHeads != nil {
				r.Err = err
				return r, err
			}
			return nil, err
		}
		if status >= 100 && status < 200 {
			r.Informational = append(r.Informational, status)
			r.InfoHeads = append(r.InfoHeads, head)
			continue
		}
		r.Status, r.Head, r.Header = status, head, header
		break
	}
	r.Body, r.Complete, r.Err = readBody(rc.br, method, r)
	return r, r.Err
}

// after reports what follows an answer within wait: "quiet" (nothing, the
// connection open), "closed", or the bytes that came.
func (rc *rawClient) after(wait time.Duration) string {
	rc.c.SetReadDeadline(time.Now().Add(wait))
	if _, err := rc.br.Peek(1); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "quiet"
		}
		return "closed"
	}
	rc.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	b := make([]byte, 256)
	n, _ := rc.br.Read(b)
	return fmt.Sprintf("bytes %q", b[:n])
}

// readHead reads a response head; lines may end in LF alone.
func readHead(br *bufio.Reader) (head string, status int, header [][2]string, err error) {
	var sb strings.Builder
	first := true
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), 0, nil, err
		}
		if sb.Len() > 1<<20 {
			return sb.String(), 0, nil, errors.New("response head over 1 MiB")
		}
		line = strings.TrimRight(line, "\r\n")
		if first {
			first = false
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
				return sb.String(), 0, nil, fmt.Errorf("bad status line %q", line)
			}
			if status, err = strconv.Atoi(f[1]); err != nil {
				return sb.String(), 0, nil, fmt.Errorf("bad status line %q", line)
			}
			continue
		}
		if line == "" {
			return sb.String(), status, header, nil
		}
		k, v, _ := strings.Cut(line, ":")
		header = append(header, [2]string{k, strings.Trim(v, " \t")})
	}
}

// readBody reads the body the framing of r announces (RFC 9112 §6.3).
func readBody(br *bufio.Reader, method string, r *rawResponse) ([]byte, bool, error) {
	if method == "HEAD" || r.Status == 204 || r.Status == 304 {
		return nil, true, nil
	}
	if strings.Contains(strings.ToLower(r.Get("Transfer-Encoding")), "chunked") {
		b, err := readChunked(br)
		return b, err == nil, err
	}
	if cl := r.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return nil, false, fmt.Errorf("bad Content-Length %q", cl)
		}
		b := make([]byte, n)
		got, err := io.ReadFull(br, b)
		return b[:got], err == nil, err
	}
	b, err := io.ReadAll(br) // close-delimited
	return b, err == nil, err
}

// rawGet is a plain keep-alive GET of path with a tag, as raw bytes.
func rawGet(path, tag string) string {
	return "GET " + path + "?tag=" + tag + " HTTP/1.1\r\nHost: ferry.test\r\n\r\n"
}
