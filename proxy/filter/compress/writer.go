package compress

import (
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// encoder is what gzip.Writer, zstd.Encoder and brotli.Writer share.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

// Levels: on-the-fly compression trades ratio for CPU. gzip 6 is zlib's
// and Go's default (nginx users raise gzip_comp_level to about this),
// zstd's default level compresses better than gzip 6 at a fraction of its
// cost, brotli 4 is where on-the-fly brotli is usually run (levels above 5
// cost several times more for a few percent).
const (
	gzipLevel   = 6
	brotliLevel = 4
	// zstdWindow bounds the decoder's memory: RFC 9659 says HTTP zstd
	// senders must not need more than 8 MiB; 1 MiB keeps our encoders small.
	zstdWindow = 1 << 20
)

// encoderPool reuses one encoding's encoders: their state (tables, windows)
// is most of the cost of a small response.
type encoderPool struct {
	name string
	pool sync.Pool
}

func newEncoderPool(name string) (*encoderPool, error) {
	p := &encoderPool{name: name}
	switch name {
	case "gzip":
		if _, err := gzip.NewWriterLevel(io.Discard, gzipLevel); err != nil {
			return nil, fmt.Errorf("compress: gzip: %w", err)
		}
		p.pool.New = func() any {
			w, _ := gzip.NewWriterLevel(io.Discard, gzipLevel)
			return w
		}
	case "zstd":
		opts := []zstd.EOption{zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithZeroFrames(true)}
		if _, err := zstd.NewWriter(nil, opts...); err != nil {
			return nil, fmt.Errorf("compress: zstd: %w", err)
		}
		p.pool.New = func() any {
			w, _ := zstd.NewWriter(nil, opts...)
			return w
		}
	case "br":
		p.pool.New = func() any { return brotli.NewWriterLevel(io.Discard, brotliLevel) }
	default:
		return nil, fmt.Errorf("compress: unknown encoding %q", name)
	}
	return p, nil
}

func (p *encoderPool) get(dst io.Writer) encoder {
	e := p.pool.Get().(encoder)
	e.Reset(dst)
	return e
}

// put forgets the destination and returns e to the pool.
func (p *encoderPool) put(e encoder) {
	e.Reset(io.Discard)
	p.pool.Put(e)
}

// writer states.
const (
	undecided = iota // unknown length: holding up to minBytes
	compressing
	identity
	ended
)

// writer is one response's body on its way through the filter. Not safe
// for concurrent use (the core writes a body from one goroutine).
type writer struct {
	f        *Filter
	w        filter.Response
	dst      io.Writer
	pool     *encoderPool
	encoding string
	enc      encoder
	held     []byte // undecided: the body so far, less than minBytes
	state    int
}

var _ filter.Aborter = (*writer)(nil)

// start commits to compression; the head is not sent yet (filter rule 1).
func (b *writer) start() {
	markEncoded(b.w, b.encoding)
	b.enc = b.pool.get(b.dst)
	b.state = compressing
}

func (b *writer) Write(p []byte) (int, error) {
	switch b.state {
	case compressing:
		return b.enc.Write(p)
	case identity:
		return b.dst.Write(p)
	case undecided:
		if int64(len(b.held)+len(p)) < b.f.minBytes {
			b.held = append(b.held, p...)
			return len(p), nil
		}
		b.start()
		if err := b.release(); err != nil {
			return 0, err
		}
		return b.enc.Write(p)
	}
	return 0, io.ErrClosedPipe
}

// release passes the held bytes on to the chosen path.
func (b *writer) release() error {
	if len(b.held) == 0 {
		return nil
	}
	var err error
	if b.state == compressing {
		_, err = b.enc.Write(b.held)
	} else {
		_, err = b.dst.Write(b.held)
	}
	b.held = nil
	return err
}

// Flush sends what the encoder holds. The upstream pausing before
// min_bytes arrived means a stream that wants its bytes now: it is sent
// as is (the head is still untouched).
func (b *writer) Flush() error {
	switch b.state {
	case compressing:
		return b.enc.Flush()
	case undecided:
		b.state = identity
		return b.release()
	}
	return nil
}

// Close ends the body: a body that ended below min_bytes is sent as is.
func (b *writer) Close() error {
	switch b.state {
	case compressing:
		err := b.enc.Close()
		b.pool.put(b.enc)
		b.enc = nil
		b.state = ended
		return err
	case undecided:
		b.state = identity
		err := b.release()
		b.state = ended
		return err
	}
	b.state = ended
	return nil
}

// Abort drops the encoder without the trailer that would make a cut-off
// body look complete.
func (b *writer) Abort() {
	if b.state == compressing {
		b.pool.put(b.enc)
		b.enc = nil
	}
	b.held = nil
	b.state = ended
}
