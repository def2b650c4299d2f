// Package ratelimit is the rate_limit route filter (SPEC §13): a token
// bucket per key (client IP, a header, a verified JWT claim, or the whole
// route), kept in the process (Local) or shared by a fleet through Redis
// (Redis, falling back to a Local bucket while Redis fails).
//
// Answers and fields follow draft-ietf-httpapi-ratelimit-headers-10:
// every response (the 429 and the upstream's) carries
//
//	RateLimit-Policy: "NAME";q=RATE;w=PER_SECONDS
//	RateLimit: "NAME";r=REMAINING;t=SECONDS
//
// where t is the wait until the bucket is full again (on a 429: until a
// request may pass, as Retry-After says).
package ratelimit

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/ferry-proxy/ferry/proxy/filter"
)

// Key kinds.
const (
	KeyClientIP = "client_ip"
	KeyRoute    = "route"
	KeyHeader   = "header"
	KeyClaim    = "claim"
)

// Reasons counted in Options.Counters.
const (
	ReasonLimited    = "limited"
	ReasonStoreError = "store_error"
)

// Reasons lists the counted reasons, for filter.Stats.For.
var Reasons = []string{ReasonLimited, ReasonStoreError}

// Options configure a Filter.
type Options struct {
	Bucket  Bucket
	Key     string // KeyClientIP, KeyRoute, KeyHeader or KeyClaim
	KeyName string // the header or claim
	Store   Store
	// Policy names the limit in the RateLimit fields (an sf-string): the
	// route's name, with "-2", "-3" … for a route's later rate_limits.
	Policy   string
	Counters *filter.Counters
}

// Filter limits a route's requests. Immutable once built; safe for
// concurrent use.
type Filter struct {
	o      Options
	policy string // the RateLimit-Policy value
}

// decisionKey carries the decision to the response, per filter.
type decisionKey struct{ f *Filter }

// New builds a Filter.
func New(o Options) *Filter {
	w := int64(math.Ceil(o.Bucket.Per.Seconds()))
	f := &Filter{o: o, policy: strconv.Quote(o.Policy) + ";q=" + strconv.Itoa(o.Bucket.Rate) + ";w=" + strconv.FormatInt(w, 10)}
	return f
}

// Request takes a token, or answers 429. A request without the key's header
// or claim is not limited by this filter (nginx's limit_req skips empty
// keys the same way).
func (f *Filter) Request(ctx context.Context, r filter.Request) *filter.Answer {
	key, ok := f.key(r)
	if !ok {
		return nil
	}
	d, err := f.o.Store.Take(ctx, key)
	if err != nil { // stores fail open themselves; this is a safety net
		return nil
	}
	r.Set(decisionKey{f}, d)
	if d.Allowed {
		return nil
	}
	f.o.Counters.Add(ReasonLimited)
	filter.MarkAnswered(r, "rate_limit")
	retry := seconds(d.RetryAfter)
	return &filter.Answer{
		Status: 429,
		Header: [][2]string{
			{"Retry-After", strconv.FormatInt(retry, 10)},
			{"RateLimit-Policy", f.policy},
			{"RateLimit", f.field(0, retry)},
			{"Content-Type", "text/plain; charset=utf-8"},
		},
		Body: []byte("429 Too Many Requests\n"),
	}
}

// Response adds the RateLimit fields to the upstream's response.
func (f *Filter) Response(r filter.Request, w filter.Response) {
	d, ok := r.Value(decisionKey{f}).(Decision)
	if !ok || !d.Allowed {
		return
	}
	w.AddHeader("RateLimit-Policy", f.policy)
	w.AddHeader("RateLimit", f.field(d.Remaining, seconds(d.Full)))
}

func (f *Filter) field(remaining int, t int64) string {
	return strconv.Quote(f.o.Policy) + ";r=" + strconv.Itoa(remaining) + ";t=" + strconv.FormatInt(t, 10)
}

// seconds rounds up, at least 1 for a positive wait (Retry-After: 0 would
// invite an immediate retry that fails).
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}

// key is the bucket's key for the request; false: not limited.
func (f *Filter) key(r filter.Request) (string, bool) {
	switch f.o.Key {
	case KeyRoute:
		return "", true
	case KeyHeader:
		v := r.Header(f.o.KeyName)
		return v, v != ""
	case KeyClaim:
		return claimKey(filter.Claims(r)[f.o.KeyName])
	default:
		ip := r.ClientIP()
		return ip, ip != ""
	}
}

// claimKey uses a string or number claim as a key.
func claimKey(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case json.Number:
		return v.String(), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
