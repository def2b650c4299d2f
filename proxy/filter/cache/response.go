package cache

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-proxy/ferry/proxy/filter"
)

// serve answers from a stored object when it may be used without the
// upstream: fresh (HIT), or stale within stale-while-revalidate while
// another request revalidates it (STALE). Otherwise it marks o as the
// response this request revalidates and returns nil.
func (f *Filter) serve(st *state, r filter.Request, o *object) *filter.Answer {
	now := f.now()
	age := o.fresh.currentAge(now)
	if age < o.fresh.lifetime {
		f.hits.Add(1)
		return f.answer(r, o, age, "HIT")
	}
	staleFor := age - o.fresh.lifetime
	if o.staleOK() && o.policy.swr > 0 && staleFor <= o.policy.swr && f.inFlight(st) {
		f.stale.Add(1)
		return f.answer(r, o, age, "STALE")
	}
	st.stale = o
	return nil
}

// notModifiedFields are the fields a 304 carries (RFC 9110 §15.4.5).
var notModifiedFields = map[string]bool{"cache-control": true, "content-location": true, "date": true,
	"etag": true, "expires": true, "vary": true, "last-modified": true}

// answer is o as an answer to r: a 304 when r's own validators match
// (RFC 9111 §4.3.2), else the stored response; with Age and X-Cache.
func (f *Filter) answer(r filter.Request, o *object, age time.Duration, xcache string) *filter.Answer {
	notModified := false
	if o.status == http.StatusOK {
		if inm := r.Header("If-None-Match"); inm != "" {
			notModified = etagMatch(inm, o.get("ETag"))
		} else if ims, ok := httpTime(r.Header("If-Modified-Since")); ok {
			if lm, ok := httpTime(o.get("Last-Modified")); ok && !lm.After(ims) {
				notModified = true
			}
		}
	}
	a := &filter.Answer{Status: o.status, Body: o.body, Header: make([][2]string, 0, len(o.header)+2)}
	if notModified {
		a.Status, a.Body = http.StatusNotModified, nil
	}
	for _, h := range o.header {
		if notModified && !notModifiedFields[strings.ToLower(h[0])] {
			continue
		}
		a.Header = append(a.Header, h)
	}
	a.Header = append(a.Header, [2]string{"Age", ageHeader(age)}, [2]string{"X-Cache", xcache})
	return a
}

// Replace turns a 304 to the cache's own validators into the stored
// response made fresh (§4.3.3, §4.3.4), and a 5xx into the stale stored
// response while stale-if-error allows (RFC 5861 §4).
func (f *Filter) Replace(r filter.Request, w filter.Response) *filter.Answer {
	st := stateOf(r)
	if st == nil || st.stale == nil {
		return nil
	}
	now := f.now()
	switch status := w.Status(); {
	case status == http.StatusNotModified && st.added:
		o := st.stale
		if et := w.Header("ETag"); et == "" || etagMatch(et, o.get("ETag")) {
			o = f.freshen(st, w, now)
			f.put(st.k, o)
		}
		f.revalidated.Add(1)
		f.release(st)
		return f.answer(r, o, o.fresh.currentAge(now), "REVALIDATED")
	case status == 500 || status == 502 || status == 503 || status == 504:
		o := st.stale
		age := o.fresh.currentAge(now)
		if o.staleOK() && o.policy.sie > 0 && age-o.fresh.lifetime <= o.policy.sie {
			f.stale.Add(1)
			f.release(st)
			return f.answer(r, o, age, "STALE")
		}
	}
	return nil
}

// freshen is st.stale updated by a 304 (§3.2): the 304's fields replace
// the stored ones of the same name, except those the stored body depends
// on (Content-Encoding, Vary: what the filters after cache made of it)
// and a strong ETag for a stored weak one (compress weakened it).
func (f *Filter) freshen(st *state, w filter.Response, now time.Time) *object {
	old := st.stale
	o := &object{status: old.status, body: old.body, vary: old.vary, varyKey: old.varyKey}
	o.fresh = freshness{requestTime: st.started, responseTime: now, ageValue: parseAge(w.Header("Age"))}
	updated := make(map[string][]string)
	if hl, ok := w.(filter.HeaderLister); ok {
		hl.EachHeader(func(name, value string) {
			n := strings.ToLower(name)
			if hopByHop[n] || n == "content-encoding" || n == "vary" {
				return
			}
			if n == "etag" && strings.HasPrefix(old.get("ETag"), "W/") && !strings.HasPrefix(value, "W/") {
				return
			}
			updated[n] = append(updated[n], value)
		})
	}
	for _, h := range old.header {
		if _, ok := updated[strings.ToLower(h[0])]; !ok {
			o.header = append(o.header, h)
		}
	}
	for _, h := range old.header { // keep the stored names' spelling and order
		n := strings.ToLower(h[0])
		if vs, ok := updated[n]; ok {
			for _, v := range vs {
				o.header = append(o.header, [2]string{h[0], v})
			}
			delete(updated, n)
		}
	}
	for n, vs := range updated {
		for _, v := range vs {
			o.header = append(o.header, [2]string{http.CanonicalHeaderKey(n), v})
		}
	}
	o.derive()
	return o
}

// Response decides whether the response is stored, invalidates on a
// successful unsafe request (§4.4), and marks the answer with X-Cache.
func (f *Filter) Response(r filter.Request, w filter.Response) {
	st := stateOf(r)
	if st == nil {
		return
	}
	if st.unsafe {
		if s := w.Status(); s >= 200 && s < 400 {
			f.invalidate(r, w)
		}
		w.SetHeader("X-Cache", "BYPASS")
		return
	}
	if r.Method() == http.MethodHead {
		w.SetHeader("X-Cache", "BYPASS")
		return
	}
	st.store = f.storable(st, r, w)
	if !st.store {
		f.release(st) // waiting requests go upstream themselves now
	}
	w.SetHeader("X-Cache", "MISS")
}

// storable applies RFC 9111 §3 to the response head (the Vary and size
// checks follow when the body streams).
func (f *Filter) storable(st *state, r filter.Request, w filter.Response) bool {
	status := w.Status()
	if !understood[status] || st.noStore || w.Header("Content-Range") != "" {
		return false
	}
	cc := parseCacheControl(w.HeaderValues("Cache-Control"))
	if cc.noStore && !cc.mustUnderstand || cc.private {
		return false
	}
	if r.Header("Authorization") != "" && !cc.public && cc.sMaxAge < 0 && !cc.mustRevalidate {
		return false // §3.5
	}
	if len(w.HeaderValues("Set-Cookie")) > 0 {
		return false // one client's cookie is never another's (nginx does the same)
	}
	if _, star := varyNames(w.HeaderValues("Vary")); star {
		return false
	}
	date, ok := httpTime(w.Header("Date"))
	if !ok {
		date = f.now()
	}
	life, explicit := lifetime(cc, w.Header("Expires"), date)
	hasValidator := w.Header("ETag") != "" || w.Header("Last-Modified") != ""
	if !explicit {
		// No heuristic freshness; but a no-cache response is validated
		// before every use anyway, so its freshness does not matter.
		return cc.noCache && hasValidator && heuristic[status]
	}
	return (life > 0 && !cc.noCache) || hasValidator
}

// invalidate removes the stored responses for an unsafe request's target
// and for its response's Location and Content-Location on the same host.
func (f *Filter) invalidate(r filter.Request, w filter.Response) {
	urls := []string{urlKey(r.Host(), r.Path(), r.RawQuery())}
	base := &url.URL{Scheme: "http", Host: r.Host(), Path: r.Path()}
	for _, name := range []string{"Location", "Content-Location"} {
		v := w.Header(name)
		if v == "" {
			continue
		}
		ref, err := url.Parse(v)
		if err != nil {
			continue
		}
		u := base.ResolveReference(ref)
		if !strings.EqualFold(u.Host, r.Host()) {
			continue // another origin: §4.4 forbids invalidating it from here
		}
		urls = append(urls, urlKey(u.Host, u.EscapedPath(), u.RawQuery))
	}
	for _, u := range urls {
		f.mem.invalidate(u, false)
		if f.shared != nil {
			_, _ = f.shared.invalidate(context.Background(), u, false)
		}
	}
}

// put stores o in both tiers.
func (f *Filter) put(k key, o *object) {
	f.stored.Add(1)
	f.mem.put(k, o)
	if f.shared != nil {
		f.shared.put(context.Background(), k, o)
	}
}

// Body collects a storable response as it streams to the client.
func (f *Filter) Body(r filter.Request, w filter.Response, dst io.Writer) filter.BodyWriter {
	st := stateOf(r)
	if st == nil || !st.store {
		return nil
	}
	t := &tee{f: f, st: st, r: r, w: w, dst: dst, responded: f.now()}
	if n, err := strconv.ParseInt(w.Header("Content-Length"), 10, 64); err == nil && n > 0 && n <= f.maxObject {
		t.buf = make([]byte, 0, n) // one allocation for a body of known length
	}
	return t
}

// tee passes the body on and keeps a copy up to max_object_bytes. The
// head is read at the first Write, Flush or Close (filter rule 1): the
// filters written after cache may change it until then. Not safe for
// concurrent use.
type tee struct {
	f         *Filter
	st        *state
	r         filter.Request
	w         filter.Response
	dst       io.Writer
	responded time.Time
	o         *object // nil until the head is read, or when not storing
	seen      bool
	buf       []byte
}

var _ filter.Aborter = (*tee)(nil)

// head reads the response head into t.o, or gives up storing.
func (t *tee) head() {
	if t.seen {
		return
	}
	t.seen = true
	hl, ok := t.w.(filter.HeaderLister)
	if !ok {
		t.drop() // the core cannot list the head: nothing to store
		return
	}
	o := &object{status: t.w.Status()}
	var connection []string
	hl.EachHeader(func(name, value string) {
		if strings.EqualFold(name, "Connection") {
			connection = append(connection, value)
		}
		if !hopByHop[strings.ToLower(name)] {
			o.header = append(o.header, [2]string{name, value})
		}
	})
	if len(connection) > 0 { // fields named in Connection are hop-by-hop too
		kept := o.header[:0]
		for _, h := range o.header {
			if !hasToken(connection, h[0]) {
				kept = append(kept, h)
			}
		}
		o.header = kept
	}
	vary, star := varyNames(o.values("Vary"))
	if star || len(vary) > maxVaryFields {
		t.drop()
		return
	}
	o.vary = vary
	o.varyKey = variantKey(vary, t.r)
	if len(o.varyKey) > maxVariantBytes {
		t.drop()
		return
	}
	o.fresh = freshness{requestTime: t.st.started, responseTime: t.responded, ageValue: parseAge(t.w.Header("Age"))}
	if explicit := o.derive(); !explicit && !(o.policy.noCache && heuristic[o.status] &&
		(o.get("ETag") != "" || o.get("Last-Modified") != "")) {
		t.drop()
		return
	}
	t.o = o
}

// drop gives up storing; waiting requests go upstream themselves.
func (t *tee) drop() {
	t.o, t.buf = nil, nil
	t.f.release(t.st)
}

func (t *tee) Write(p []byte) (int, error) {
	t.head()
	n, err := t.dst.Write(p)
	if t.o != nil {
		if int64(len(t.buf)+n) > t.f.maxObject {
			t.drop() // too large: streams through unstored
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	return n, err
}

func (t *tee) Flush() error {
	t.head()
	return nil
}

// Close stores the object: the body ended as framed.
func (t *tee) Close() error {
	t.head()
	if t.o != nil {
		t.o.body = t.buf
		t.f.put(t.st.k, t.o)
		t.o, t.buf = nil, nil
	}
	t.f.release(t.st)
	return nil
}

// Abort drops the copy of a cut-off body.
func (t *tee) Abort() {
	t.seen = true
	t.drop()
}

// hasToken reports whether a comma-separated field has the token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(item), token) {
				return true
			}
		}
	}
	return false
}
