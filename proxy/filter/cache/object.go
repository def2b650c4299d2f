package cache

import (
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// object is a stored response: what the client got (after the filters
// written after cache), its timing, and its derived policy. Immutable once
// stored: a revalidation stores a new object.
type object struct {
	status  int
	header  [][2]string // without hop-by-hop fields, Content-Length and Age
	body    []byte
	vary    []string // the selecting fields, lower-case, sorted
	varyKey string   // this variant's selecting values (see variantKey)
	fresh   freshness
	policy  directives
}

// size is the object's weight in the memory tier.
func (o *object) size() int64 {
	n := int64(len(o.body)+len(o.varyKey)) + 128
	for _, f := range o.header {
		n += int64(len(f[0]) + len(f[1]) + 4)
	}
	return n
}

// get is the first value of a stored field.
func (o *object) get(name string) string {
	for _, f := range o.header {
		if strings.EqualFold(f[0], name) {
			return f[1]
		}
	}
	return ""
}

// values are every value of a stored field.
func (o *object) values(name string) []string {
	var vs []string
	for _, f := range o.header {
		if strings.EqualFold(f[0], name) {
			vs = append(vs, f[1])
		}
	}
	return vs
}

// derive sets policy and fresh.lifetime from the stored header; storable
// reports whether the response states a freshness lifetime at all.
func (o *object) derive() (explicit bool) {
	o.policy = parseCacheControl(o.values("Cache-Control"))
	o.fresh.date = o.fresh.responseTime
	if d, ok := httpTime(o.get("Date")); ok {
		o.fresh.date = d
	}
	o.fresh.lifetime, explicit = lifetime(o.policy, o.get("Expires"), o.fresh.date)
	if o.policy.noCache {
		o.fresh.lifetime = 0 // stored, but validated before every use (§5.2.2.4)
	}
	return explicit
}

// staleOK reports whether the policy lets the cache serve this object
// stale at all (§4.2.4): never with must-revalidate, proxy-revalidate,
// s-maxage or no-cache.
func (o *object) staleOK() bool {
	return !o.policy.mustRevalidate && o.policy.sMaxAge < 0 && !o.policy.noCache
}

// ttl is how long the shared tier keeps the object: its remaining
// freshness plus its stale windows, plus keepValidated when it has a
// validator (a stale object still saves a body through a 304).
func (o *object) ttl(now time.Time) time.Duration {
	left := o.fresh.lifetime - o.fresh.currentAge(now)
	stale := time.Duration(0)
	if o.staleOK() {
		stale = max(o.policy.swr, o.policy.sie, 0)
	}
	t := max(left, 0) + stale
	if o.get("ETag") != "" || o.get("Last-Modified") != "" {
		t += keepValidated
	}
	return max(t, time.Second)
}

// keepValidated is how long a stale object with a validator stays in the
// shared tier (nginx's proxy_cache_path inactive default).
const keepValidated = 10 * time.Minute

// The shared tier's encoding: a version byte, then varints and
// length-prefixed strings. decode never trusts a length.
const encodingVersion = 1

func (o *object) encode() []byte {
	b := make([]byte, 0, o.size()+64)
	b = append(b, encodingVersion)
	b = binary.AppendUvarint(b, uint64(o.status))
	b = binary.AppendVarint(b, o.fresh.requestTime.UnixNano())
	b = binary.AppendVarint(b, o.fresh.responseTime.UnixNano())
	b = binary.AppendVarint(b, int64(o.fresh.ageValue))
	b = binary.AppendUvarint(b, uint64(len(o.header)))
	for _, f := range o.header {
		b = appendString(b, f[0])
		b = appendString(b, f[1])
	}
	b = binary.AppendUvarint(b, uint64(len(o.vary)))
	for _, v := range o.vary {
		b = appendString(b, v)
	}
	b = appendString(b, o.varyKey)
	b = appendString(b, string(o.body))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorrupt = errors.New("cache: corrupt shared-tier entry")

// decode is encode's inverse; a corrupt or foreign value is an error.
func decode(b []byte) (*object, error) {
	d := reader{b: b}
	if v := d.byte(); v != encodingVersion {
		return nil, errCorrupt
	}
	o := &object{}
	o.status = int(d.uvarint())
	o.fresh.requestTime = time.Unix(0, d.varint())
	o.fresh.responseTime = time.Unix(0, d.varint())
	o.fresh.ageValue = time.Duration(d.varint())
	n := d.uvarint()
	if n > uint64(len(b)) {
		return nil, errCorrupt
	}
	o.header = make([][2]string, 0, n)
	for range n {
		o.header = append(o.header, [2]string{d.string(), d.string()})
	}
	n = d.uvarint()
	if n > uint64(len(b)) {
		return nil, errCorrupt
	}
	for range n {
		o.vary = append(o.vary, d.string())
	}
	o.varyKey = d.string()
	o.body = []byte(d.string())
	if d.bad || len(d.b) != 0 || o.status < 100 || o.status > 999 {
		return nil, errCorrupt
	}
	o.derive()
	return o, nil
}

// reader reads what encode wrote; bad is set at the first short read.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
