// Package jwt is the jwt route filter (SPEC §13): it verifies a bearer token
// (RFC 6750) and its claims before the request goes upstream.
//
// Verification is golang-jwt/jwt/v5's: signature, alg allow-list (RS256,
// ES256, EdDSA, and HS256 only when a secret is set, so that neither "none"
// nor a public key used as an HMAC secret can pass), exp (required), nbf and
// iat with a leeway, iss and aud. This package adds key sets (JWKS files and
// URLs), require_claims, forward_claims, the RFC 6750 answers and a cache of
// verified tokens (cache.go).
package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/ferry-proxy/ferry/proxy/filter"
)

// Options configure a Filter.
type Options struct {
	Issuer    string   // "" accepts any
	Audiences []string // nil accepts any; else the token's aud holds one of them
	Leeway    time.Duration
	Keys      Keys   // JWKS keys; nil: HS256 only
	HS256     []byte // the HS256 secret; nil: HS256 is refused
	// RequireClaims: each claim (a string, or an array of strings) holds
	// one of the listed values; else 403.
	RequireClaims map[string][]string
	// ForwardClaims copy claims into request headers, after removing any
	// client-sent field of that name.
	ForwardClaims []ClaimHeader
	Now           func() time.Time // default time.Now
	Counters      *filter.Counters // reasons: Reasons
	Realm         string           // the realm of WWW-Authenticate; default "ferry"
	// CacheSize is how many verified tokens the filter keeps, to answer
	// later requests with the same token without checking its signature
	// again (cache.go); 0 keeps none and verifies every request.
	CacheSize int
	// CacheLookups counts the cache's lookups by result (CacheResults);
	// nil counts nothing.
	CacheLookups *filter.Counters
}

// Cache lookup results counted in Options.CacheLookups: a hit is answered
// from the cache, a miss (not there, or no longer usable) is verified.
const (
	CacheHit  = "hit"
	CacheMiss = "miss"
)

// CacheResults lists the lookup results, for filter.Stats.For.
var CacheResults = []string{CacheHit, CacheMiss}

// ClaimHeader is one forward_claims entry.
type ClaimHeader struct{ Claim, Header string }

// Rejection reasons counted in Options.Counters.
const (
	ReasonMissing   = "missing"
	ReasonInvalid   = "invalid"
	ReasonExpired   = "expired"
	ReasonForbidden = "forbidden"
)

// Reasons lists the rejection reasons, for filter.Stats.For.
var Reasons = []string{ReasonMissing, ReasonInvalid, ReasonExpired, ReasonForbidden}

// MaxTokenBytes bounds a token; a longer one is refused before parsing.
const MaxTokenBytes = 16 << 10

// Filter verifies bearer tokens. Its options are immutable once built; it
// is safe for concurrent use (its cache of verified tokens too).
type Filter struct {
	o      Options
	parser *jwtlib.Parser
	realm  string
	cache  *tokenCache // nil: no cache
	// verifies counts the tokens that went through the parser (tests tell
	// hits from verifications by it).
	verifies atomic.Uint64
}

// New builds a Filter.
func New(o Options) *Filter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Realm == "" {
		o.Realm = "ferry"
	}
	methods := []string{"RS256", "ES256", "EdDSA"}
	if o.HS256 != nil {
		methods = append(methods, "HS256")
	}
	opts := []jwtlib.ParserOption{
		jwtlib.WithValidMethods(methods),
		jwtlib.WithLeeway(o.Leeway),
		jwtlib.WithTimeFunc(o.Now),
		jwtlib.WithJSONNumber(),
		jwtlib.WithExpirationRequired(),
		jwtlib.WithIssuedAt(),
	}
	if o.Issuer != "" {
		opts = append(opts, jwtlib.WithIssuer(o.Issuer))
	}
	if len(o.Audiences) > 0 {
		opts = append(opts, jwtlib.WithAudience(o.Audiences...))
	}
	return &Filter{o: o, parser: jwtlib.NewParser(opts...), realm: strconv.Quote(o.Realm), cache: newTokenCache(o.CacheSize)}
}

// CachedTokens is the number of verified tokens the filter holds.
func (f *Filter) CachedTokens() int { return f.cache.len() }

// Request verifies the token and the claims; on success it stores the
// claims (filter.SetClaims) and forwards the configured ones. A token found
// in the cache and still usable is answered as its verification was; any
// other goes through the parser.
func (f *Filter) Request(ctx context.Context, r filter.Request) *filter.Answer {
	token, problem := bearer(r.HeaderValues("Authorization"))
	switch {
	case problem == errMissing:
		return f.reject(r, ReasonMissing, "")
	case problem != nil:
		return f.reject(r, ReasonInvalid, problem.Error())
	}
	var key tokenKey
	if f.cache != nil {
		key = keyOf(token)
		if v := f.cache.get(&key); v != nil {
			if f.usable(ctx, v) {
				f.o.CacheLookups.Add(CacheHit)
				return f.pass(r, v)
			}
			// Expired, or its key set was replaced: the parser decides
			// (and counts) as if the token had never been seen.
			f.cache.remove(&key, v)
		}
		f.o.CacheLookups.Add(CacheMiss)
	}
	v, err := f.verify(ctx, token)
	if err != nil {
		reason, desc := classify(err)
		return f.reject(r, reason, desc)
	}
	if f.cache != nil {
		if now := f.o.Now(); cacheable(v, now) {
			f.cache.put(&key, v, now)
		}
	}
	return f.pass(r, v)
}

// verify parses and verifies the token (signature, alg, exp, nbf, iat, iss,
// aud) and works out what a later request with it needs.
func (f *Filter) verify(ctx context.Context, token string) (*verified, error) {
	f.verifies.Add(1)
	v := &verified{}
	claims := jwtlib.MapClaims{}
	_, err := f.parser.ParseWithClaims(token, claims, func(t *jwtlib.Token) (any, error) {
		return f.key(ctx, t, v)
	})
	if err != nil {
		return nil, err
	}
	v.claims = claims
	// The validator accepted these claims, so exp is a number and nbf and
	// iat are numbers or absent; the errors cannot happen.
	exp, _ := claims.GetExpirationTime()
	if exp == nil {
		return nil, errors.New("jwt: a verified token without exp") // WithExpirationRequired
	}
	v.until = exp.Add(f.o.Leeway)
	nbf, _ := claims.GetNotBefore()
	iat, _ := claims.GetIssuedAt()
	for _, t := range []*jwtlib.NumericDate{nbf, iat} {
		if t != nil && t.Add(-f.o.Leeway).After(v.from) {
			v.from = t.Add(-f.o.Leeway)
		}
	}
	v.allowed = f.allowed(claims)
	v.forward = make([]forwarded, len(f.o.ForwardClaims))
	for i, ch := range f.o.ForwardClaims {
		v.forward[i].value, v.forward[i].ok = claimString(claims[ch.Claim])
	}
	return v, nil
}

// usable reports whether the parser would accept the cached token now:
// inside its time window (the request's Now, so a clock that steps back
// counts too), and, unless HS256, verified with the key set Keys gives for
// its kid now. Keys behaves as on a verification: an unknown kid may wait
// for a refresh.
func (f *Filter) usable(ctx context.Context, v *verified) bool {
	now := f.o.Now()
	if now.Before(v.from) || !now.Before(v.until) {
		return false
	}
	if v.hs256 {
		return true // the secret is the filter's, fixed for its life
	}
	return f.o.Keys != nil && f.o.Keys.Keys(ctx, v.kid) == v.keys
}

// cacheable: a token whose nbf is still ahead (accepted within the leeway)
// is not kept; it is verified again until its nbf has passed.
func cacheable(v *verified, now time.Time) bool {
	nbf, _ := v.claims.GetNotBefore()
	return (nbf == nil || !now.Before(nbf.Time)) && now.Before(v.until)
}

// pass answers a verified token: 403 if require_claims does not hold, else
// the claims go on with the request.
func (f *Filter) pass(r filter.Request, v *verified) *filter.Answer {
	if !v.allowed {
		f.o.Counters.Add(ReasonForbidden)
		filter.MarkAnswered(r, "jwt")
		return answer(403, `Bearer realm=`+f.realm+`, error="insufficient_scope", error_description="the token's claims do not allow this request"`)
	}
	for i, ch := range f.o.ForwardClaims {
		r.DelHeader(ch.Header)
		if fw := v.forward[i]; fw.ok {
			r.SetHeader(ch.Header, fw.value)
		}
	}
	filter.SetClaims(r, v.claims)
	return nil
}

// key finds the key for a token whose alg the parser already checked
// against the allow-list, and records in v what it was verified with.
func (f *Filter) key(ctx context.Context, t *jwtlib.Token, v *verified) (any, error) {
	alg := t.Method.Alg()
	if alg == "HS256" {
		v.hs256 = true
		return f.o.HS256, nil // only allowed when set
	}
	kid, _ := t.Header["kid"].(string)
	if f.o.Keys == nil {
		return nil, errUnknownKey
	}
	v.kid = kid
	v.keys = f.o.Keys.Keys(ctx, kid)
	keys := v.keys.candidates(kid, alg)
	switch len(keys) {
	case 0:
		return nil, errUnknownKey
	case 1:
		return keys[0], nil
	}
	set := jwtlib.VerificationKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

var (
	errMissing    = errors.New("no bearer token")
	errUnknownKey = errors.New("unknown signing key")
)

// bearer extracts the token of an "Authorization: Bearer" field. No field,
// or a field with another scheme (Basic), is errMissing: RFC 6750 §3.1 then
// wants no error code.
func bearer(fields []string) (string, error) {
	if len(fields) == 0 {
		return "", errMissing
	}
	if len(fields) > 1 {
		return "", errors.New("more than one Authorization field")
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(fields[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errMissing
	}
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return "", errors.New("empty bearer token")
	case len(token) > MaxTokenBytes:
		return "", errors.New("token too large")
	}
	return token, nil
}

// classify maps a verification error to a reason and a fixed description
// (never the token's own content).
func classify(err error) (reason, desc string) {
	switch {
	case errors.Is(err, jwtlib.ErrTokenExpired):
		return ReasonExpired, "token expired"
	case errors.Is(err, jwtlib.ErrTokenNotValidYet):
		return ReasonInvalid, "token not valid yet"
	case errors.Is(err, jwtlib.ErrTokenUsedBeforeIssued):
		return ReasonInvalid, "token issued in the future"
	case errors.Is(err, jwtlib.ErrTokenInvalidIssuer):
		return ReasonInvalid, "wrong issuer"
	case errors.Is(err, jwtlib.ErrTokenInvalidAudience):
		return ReasonInvalid, "wrong audience"
	case errors.Is(err, jwtlib.ErrTokenRequiredClaimMissing):
		return ReasonInvalid, "missing required claim"
	case errors.Is(err, errUnknownKey):
		return ReasonInvalid, "unknown signing key"
	case errors.Is(err, jwtlib.ErrTokenSignatureInvalid):
		return ReasonInvalid, "invalid signature"
	case errors.Is(err, jwtlib.ErrTokenMalformed):
		return ReasonInvalid, "malformed token"
	case errors.Is(err, jwtlib.ErrTokenInvalidClaims):
		return ReasonInvalid, "invalid claims"
	case errors.Is(err, jwtlib.ErrTokenUnverifiable):
		return ReasonInvalid, "token cannot be verified"
	}
	return ReasonInvalid, "invalid token"
}

// reject answers 401 (RFC 6750 §3).
func (f *Filter) reject(r filter.Request, reason, desc string) *filter.Answer {
	f.o.Counters.Add(reason)
	filter.MarkAnswered(r, "jwt")
	challenge := "Bearer realm=" + f.realm
	if desc != "" {
		challenge += `, error="invalid_token", error_description=` + strconv.Quote(desc)
	}
	return answer(401, challenge)
}

func answer(status int, challenge string) *filter.Answer {
	text := "401 Unauthorized\n"
	if status == 403 {
		text = "403 Forbidden\n"
	}
	return &filter.Answer{
		Status: status,
		Header: [][2]string{
			{"WWW-Authenticate", challenge},
			{"Content-Type", "text/plain; charset=utf-8"},
			{"Cache-Control", "no-store"},
		},
		Body: []byte(text),
	}
}

// allowed checks require_claims: each claim holds one of its values.
func (f *Filter) allowed(claims jwtlib.MapClaims) bool {
	for name, accepted := range f.o.RequireClaims {
		switch v := claims[name].(type) {
		case string:
			if !slices.Contains(accepted, v) {
				return false
			}
		case []any:
			if !slices.ContainsFunc(v, func(e any) bool {
				s, ok := e.(string)
				return ok && slices.Contains(accepted, s)
			}) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// claimString renders a claim for a header: strings as they are, numbers
// and booleans as in JSON, arrays of those joined with ","; objects,
// null and values with control characters are not forwarded.
func claimString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, safe(v)
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			if _, isArray := e.([]any); isArray {
				return "", false
			}
			s, ok := claimString(e)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), len(parts) > 0
	}
	return "", false
}

func safe(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
}
