package filter

import (
	"context"
	"io"
	"testing"
)

// layer is a BodyFilter whose writer records how it ended.
type layer struct {
	name   string
	abort  bool // its writer implements Aborter
	ended  *[]string
	answer *Answer
	done   *[]string
}

func (l *layer) Body(r Request, w Response, dst io.Writer) BodyWriter {
	if l.abort {
		return &abortWriter{plainWriter{l}}
	}
	return &plainWriter{l}
}

func (l *layer) Replace(r Request, w Response) *Answer { return l.answer }
func (l *layer) Response(r Request, w Response)        {}
func (l *layer) Request(ctx context.Context, r Request) *Answer {
	return nil
}
func (l *layer) Finish(r Request) { *l.done = append(*l.done, l.name) }

type plainWriter struct{ l *layer }

func (p *plainWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *plainWriter) Flush() error                { return nil }
func (p *plainWriter) Close() error {
	*p.l.ended = append(*p.l.ended, p.l.name+":close")
	return nil
}

type abortWriter struct{ plainWriter }

func (a *abortWriter) Abort() { *a.l.ended = append(*a.l.ended, a.l.name+":abort") }

func TestAbortBodyEndsEveryLayer(t *testing.T) {
	var ended, done []string
	c := NewChain([]string{"a", "b", "c"}, []any{
		&layer{name: "a", abort: true, ended: &ended, done: &done},
		&layer{name: "b", ended: &ended, done: &done},
		&layer{name: "c", abort: true, ended: &ended, done: &done},
	})
	bw := c.Body(nil, nil, io.Discard)
	AbortBody(bw)
	want := []string{"c:abort", "b:close", "a:abort"}
	if len(ended) != 3 || ended[0] != want[0] || ended[1] != want[1] || ended[2] != want[2] {
		t.Errorf("got %q, want %q", ended, want)
	}
	AbortBody(nil) // no writer: nothing to do
	c.Finish(nil)
	if len(done) != 3 {
		t.Errorf("Finish reached %q, want every filter", done)
	}
}

func TestReplaceRunsLastWrittenFirst(t *testing.T) {
	var ended, done []string
	first, second := &Answer{Status: 1}, &Answer{Status: 2}
	c := NewChain([]string{"a", "b"}, []any{
		&layer{name: "a", answer: first, ended: &ended, done: &done},
		&layer{name: "b", answer: second, ended: &ended, done: &done},
	})
	if got := c.Replace(nil, nil); got != second {
		t.Errorf("got answer %v, want the last written filter's", got)
	}
	var nilChain *Chain
	if nilChain.Replace(nil, nil) != nil {
		t.Error("a nil chain replaced a response")
	}
	nilChain.Finish(nil)
}
