package cache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// directives are the parsed Cache-Control directives of a response (RFC
// 9111 §5.2.2) or request (§5.2.1) that the cache acts on. Durations are
// -1 when absent.
type directives struct {
	maxAge, sMaxAge       time.Duration
	swr, sie              time.Duration // stale-while-revalidate, stale-if-error (RFC 5861)
	noStore, noCache      bool
	private, public       bool
	mustRevalidate        bool // must-revalidate or proxy-revalidate (a shared cache obeys both)
	mustUnderstand        bool
	onlyIfCached          bool // request
	maxAgeSeen, sMaxSeen  bool
	malformedFreshnessArg bool
}

// parseCacheControl parses every Cache-Control field value. Directive
// names are case-insensitive; an argument may be quoted. A qualified
// no-cache="field" or private="field" is treated as the unqualified form:
// the cache does not rewrite stored headers field by field, so it takes
// the stricter reading RFC 9111 §5.2.2.4 and §5.2.2.7 allow. A malformed
// or repeated freshness directive makes the response stale (§4.2.1: "a
// cache SHOULD consider ... invalid ... stale").
func parseCacheControl(values []string) directives {
	d := directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(item), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			switch name {
			case "max-age":
				if d.maxAgeSeen {
					d.malformedFreshnessArg = true
				}
				d.maxAgeSeen = true
				d.maxAge = seconds(arg, &d.malformedFreshnessArg)
			case "s-maxage":
				if d.sMaxSeen {
					d.malformedFreshnessArg = true
				}
				d.sMaxSeen = true
				d.sMaxAge = seconds(arg, &d.malformedFreshnessArg)
			case "stale-while-revalidate":
				var bad bool
				if s := seconds(arg, &bad); !bad {
					d.swr = s
				}
			case "stale-if-error":
				var bad bool
				if s := seconds(arg, &bad); !bad {
					d.sie = s
				}
			case "no-store":
				d.noStore = true
			case "no-cache":
				d.noCache = true
			case "private":
				d.private = true
			case "public":
				d.public = true
			case "must-revalidate", "proxy-revalidate":
				d.mustRevalidate = true
			case "must-understand":
				d.mustUnderstand = true
			case "only-if-cached":
				d.onlyIfCached = true
			}
		}
	}
	if d.malformedFreshnessArg {
		d.maxAge, d.sMaxAge = 0, -1
	}
	return d
}

// maxDelta caps delta-seconds (RFC 9111 §1.2.2: 2^31 when larger).
const maxDelta = time.Duration(1<<31) * time.Second

// seconds parses delta-seconds; a bad value sets *bad and is 0.
func seconds(s string, bad *bool) time.Duration {
	if s == "" {
		*bad = true
		return 0
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			*bad = true
			return 0
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > 1<<31 {
		return maxDelta
	}
	return time.Duration(n) * time.Second
}

// understood are the status codes whose semantics the cache knows (RFC
// 9110 §15), for §3's "the response status code is final and understood";
// 206 and 304 are understood but never stored (no range support; a 304
// only updates).
var understood = map[int]bool{
	200: true, 203: true, 204: true, 300: true, 301: true, 302: true, 303: true, 307: true,
	308: true, 400: true, 403: true, 404: true, 405: true, 410: true, 414: true, 451: true,
	500: true, 501: true, 502: true, 503: true, 504: true,
}

// heuristic are the status codes RFC 9110 §15.1 calls heuristically
// cacheable: storable without explicit freshness (the cache uses that only
// for no-cache responses, which are validated before every use).
var heuristic = map[int]bool{200: true, 203: true, 204: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true}

// httpTime parses an HTTP date; ok is false for an absent or invalid one.
func httpTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(s)
	return t, err == nil
}

// freshness is a stored response's timing (RFC 9111 §4.2).
type freshness struct {
	lifetime     time.Duration // §4.2.1; 0: stale at once
	requestTime  time.Time     // when the request that got it left
	responseTime time.Time     // when its head arrived
	date         time.Time     // its Date (responseTime when absent or invalid)
	ageValue     time.Duration // its Age field
}

// lifetime is the freshness lifetime of a response for a shared cache
// (§4.2.1): s-maxage, else max-age, else Expires minus Date; explicit only
// (the cache has no heuristic freshness, see docs/filters.md). ok is false
// when the response states none.
func lifetime(d directives, expires string, date time.Time) (time.Duration, bool) {
	switch {
	case d.sMaxAge >= 0:
		return d.sMaxAge, true
	case d.maxAge >= 0:
		return d.maxAge, true
	case expires != "":
		exp, ok := httpTime(expires)
		if !ok {
			return 0, true // an invalid Expires means "already expired" (§5.3)
		}
		return max(exp.Sub(date), 0), true
	}
	return 0, false
}

// currentAge is RFC 9111 §4.2.3's current_age at now.
func (f freshness) currentAge(now time.Time) time.Duration {
	apparent := max(f.responseTime.Sub(f.date), 0)
	responseDelay := f.responseTime.Sub(f.requestTime)
	correctedAgeValue := f.ageValue + responseDelay
	correctedInitialAge := max(apparent, correctedAgeValue)
	resident := now.Sub(f.responseTime)
	return correctedInitialAge + resident
}

// ageHeader renders an age in whole seconds for the Age field.
func ageHeader(age time.Duration) string {
	if age < 0 {
		age = 0
	}
	return strconv.FormatInt(int64(age/time.Second), 10)
}

// parseAge parses the Age field (delta-seconds); 0 when absent or invalid.
func parseAge(s string) time.Duration {
	var bad bool
	a := seconds(strings.TrimSpace(s), &bad)
	if bad {
		return 0
	}
	return a
}

// etagMatch is the weak comparison of RFC 9110 §8.8.3.2 between an
// If-None-Match field value and a stored ETag.
func etagMatch(ifNoneMatch, etag string) bool {
	if etag == "" {
		return false
	}
	opaque := strings.TrimPrefix(etag, "W/")
	for item := range strings.SplitSeq(ifNoneMatch, ",") {
		item = strings.TrimSpace(item)
		if item == "*" || strings.TrimPrefix(item, "W/") == opaque {
			return true
		}
	}
	return false
}

// hopByHop are the fields a cache neither stores nor updates (RFC 9111
// §3.1), with Content-Length (the core frames answers) and Age (computed
// per answer).
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "te": true,
	"transfer-encoding": true, "upgrade": true, "trailer": true, "proxy-authenticate": true,
	"proxy-authorization": true, "content-length": true, "age": true, "x-cache": true,
}
