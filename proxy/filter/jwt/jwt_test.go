package jwt

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/filtertest"
)

var testNow = time.Unix(1_800_000_000, 0)

func newTestFilter(t testing.TB, mod func(*Options)) (*Filter, *filter.Counters) {
	k := keysOnce()
	ks, err := ParseJWKS(jwks(rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey),
		edJWK("d1", k.ed.Public().(ed25519.PublicKey))))
	if err != nil {
		t.Fatal(err)
	}
	var stats filter.Stats
	c := stats.For("api", "jwt", Reasons...)
	o := Options{
		Issuer: "https://auth.example.com/", Audiences: []string{"shop", "admin"}, Leeway: time.Minute,
		Keys: Static{ks}, Now: func() time.Time { return testNow }, Counters: c,
		RequireClaims: map[string][]string{"role": {"admin", "developer"}},
		ForwardClaims: []ClaimHeader{{"sub", "X-User-Id"}, {"groups", "X-Groups"}, {"n", "X-N"}, {"obj", "X-Obj"}},
	}
	if mod != nil {
		mod(&o)
	}
	return New(o), c
}

// good are claims every test filter accepts.
func good() jwtlib.MapClaims {
	return jwtlib.MapClaims{"iss": "https://auth.example.com/", "aud": "shop", "sub": "user-1", "role": "admin",
		"exp": testNow.Add(time.Hour).Unix(), "iat": testNow.Add(-time.Minute).Unix()}
}

func with(c jwtlib.MapClaims, kv ...any) jwtlib.MapClaims {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func run(f *Filter, auth ...string) (*filtertest.Request, *filter.Answer) {
	var fields []string
	for _, a := range auth {
		fields = append(fields, "Authorization", a)
	}
	fields = append(fields, "X-User-Id", "forged", "X-Obj", "forged")
	r := filtertest.NewRequest("api", "192.0.2.1", "/", fields...)
	return r, f.Request(context.Background(), r)
}

func TestAcceptsEachAlgorithm(t *testing.T) {
	k := keysOnce()
	secret := []byte("a shared secret of at least thirty-two bytes")
	f, c := newTestFilter(t, func(o *Options) { o.HS256 = secret })
	for _, tc := range []struct {
		name   string
		method jwtlib.SigningMethod
		kid    string
		key    any
	}{
		{"RS256", jwtlib.SigningMethodRS256, "r1", k.rsa},
		{"ES256", jwtlib.SigningMethodES256, "e1", k.ec},
		{"EdDSA", jwtlib.SigningMethodEdDSA, "d1", k.ed},
		{"EdDSA without kid", jwtlib.SigningMethodEdDSA, "", k.ed},
		{"HS256", jwtlib.SigningMethodHS256, "", secret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, tc.method, tc.kid, tc.key, with(good(), "groups", []any{"a", "b"}, "n", 42, "obj", map[string]any{"x": 1}))
			r, a := run(f, "Bearer "+tok)
			if a != nil {
				t.Fatalf("got %d %q, want the request to go on", a.Status, filtertest.AnswerHeader(a.Header, "WWW-Authenticate"))
			}
			want := http.Header{"Authorization": {"Bearer " + tok}, "X-User-Id": {"user-1"}, "X-Groups": {"a,b"}, "X-N": {"42"}}
			for name := range want {
				if got := r.Upstream.Values(name); strings.Join(got, "|") != want.Get(name) {
					t.Errorf("upstream %s: got %q, want %q", name, got, want.Get(name))
				}
			}
			if r.Upstream.Get("X-Obj") != "" {
				t.Errorf("X-Obj: got %q, want the client's value removed and an object claim not forwarded", r.Upstream.Get("X-Obj"))
			}
			if claims := filter.Claims(r); claims["sub"] != "user-1" {
				t.Errorf("claims: got %v", claims)
			}
		})
	}
	if n := c.Get(ReasonInvalid) + c.Get(ReasonMissing); n != 0 {
		t.Errorf("got %d rejections counted", n)
	}
}

func TestRejects(t *testing.T) {
	k := keysOnce()
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	rs := func(c jwtlib.MapClaims) string { return sign(t, jwtlib.SigningMethodRS256, "r1", k.rsa, c) }
	none, _ := jwtlib.NewWithClaims(jwtlib.SigningMethodNone, good()).SignedString(jwtlib.UnsafeAllowNoneSignatureType)
	for _, tc := range []struct {
		name   string
		auth   []string
		status int
		reason string
		desc   string // in WWW-Authenticate; "" wants no error attribute
	}{
		{"no Authorization", nil, 401, ReasonMissing, ""},
		{"Basic", []string{"Basic dXNlcjpwdw=="}, 401, ReasonMissing, ""},
		{"empty bearer", []string{"Bearer "}, 401, ReasonInvalid, "empty bearer token"},
		{"two fields", []string{"Bearer a", "Bearer b"}, 401, ReasonInvalid, "more than one"},
		{"garbage", []string{"Bearer not.a.token"}, 401, ReasonInvalid, "malformed token"},
		{"oversized", []string{"Bearer " + strings.Repeat("a", MaxTokenBytes+1)}, 401, ReasonInvalid, "token too large"},
		{"alg none", []string{"Bearer " + none}, 401, ReasonInvalid, "invalid signature"},
		{"HS256 without a secret", []string{"Bearer " + sign(t, jwtlib.SigningMethodHS256, "", []byte("x"), good())}, 401, ReasonInvalid, "invalid signature"},
		{"RSA public key as HMAC secret", []string{"Bearer " + sign(t, jwtlib.SigningMethodHS256, "r1", pubDER, good())}, 401, ReasonInvalid, "invalid signature"},
		{"wrong key", []string{"Bearer " + sign(t, jwtlib.SigningMethodRS256, "r1", k.rsa2, good())}, 401, ReasonInvalid, "invalid signature"},
		{"unknown kid", []string{"Bearer " + sign(t, jwtlib.SigningMethodRS256, "r9", k.rsa, good())}, 401, ReasonInvalid, "unknown signing key"},
		{"kid of another algorithm", []string{"Bearer " + sign(t, jwtlib.SigningMethodRS256, "e1", k.rsa, good())}, 401, ReasonInvalid, "unknown signing key"},
		{"expired", []string{"Bearer " + rs(with(good(), "exp", testNow.Add(-2*time.Minute).Unix()))}, 401, ReasonExpired, "token expired"},
		{"no exp", []string{"Bearer " + rs(with(good(), "exp", "never"))}, 401, ReasonInvalid, "invalid claims"},
		{"not yet valid", []string{"Bearer " + rs(with(good(), "nbf", testNow.Add(2*time.Minute).Unix()))}, 401, ReasonInvalid, "not valid yet"},
		{"issued in the future", []string{"Bearer " + rs(with(good(), "iat", testNow.Add(time.Hour).Unix()))}, 401, ReasonInvalid, "issued in the future"},
		{"wrong issuer", []string{"Bearer " + rs(with(good(), "iss", "https://evil.example/"))}, 401, ReasonInvalid, "wrong issuer"},
		{"no audience", []string{"Bearer " + rs(with(good(), "aud", nil))}, 401, ReasonInvalid, "missing required claim"},
		{"exp missing", []string{"Bearer " + rs(with(good(), "exp", nil, "role", "admin"))}, 401, ReasonInvalid, "missing required claim"},
		{"other audience", []string{"Bearer " + rs(with(good(), "aud", []any{"billing"}))}, 401, ReasonInvalid, "wrong audience"},
		{"role not allowed", []string{"Bearer " + rs(with(good(), "role", "guest"))}, 403, ReasonForbidden, ""},
		{"no role", []string{"Bearer " + rs(with(good(), "role", nil))}, 403, ReasonForbidden, ""},
		{"role of a wrong type", []string{"Bearer " + rs(with(good(), "role", 7))}, 403, ReasonForbidden, ""},
		{"roles without a match", []string{"Bearer " + rs(with(good(), "role", []any{"guest", 1}))}, 403, ReasonForbidden, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newTestFilter(t, nil)
			r, a := run(f, tc.auth...)
			if a == nil {
				t.Fatalf("got no answer, want %d", tc.status)
			}
			if a.Status != tc.status {
				t.Errorf("status: got %d, want %d", a.Status, tc.status)
			}
			www := filtertest.AnswerHeader(a.Header, "WWW-Authenticate")
			switch {
			case !strings.HasPrefix(www, `Bearer realm="ferry"`):
				t.Errorf("WWW-Authenticate: got %q, want a Bearer challenge", www)
			case tc.status == 403 && !strings.Contains(www, `error="insufficient_scope"`):
				t.Errorf("WWW-Authenticate: got %q, want insufficient_scope", www)
			case tc.status == 401 && tc.desc == "" && strings.Contains(www, "error="):
				t.Errorf("WWW-Authenticate: got %q, want no error attribute (RFC 6750 §3.1)", www)
			case tc.desc != "" && (!strings.Contains(www, `error="invalid_token"`) || !strings.Contains(www, tc.desc)):
				t.Errorf("WWW-Authenticate: got %q, want invalid_token and %q", www, tc.desc)
			}
			if c.Get(tc.reason) != 1 {
				t.Errorf("counter %s: got %d, want 1", tc.reason, c.Get(tc.reason))
			}
			if filter.AnsweredBy(r) != "jwt" || filter.Claims(r) != nil {
				t.Errorf("got answered by %q and claims %v", filter.AnsweredBy(r), filter.Claims(r))
			}
		})
	}
}

func TestLeewayAndClaimForms(t *testing.T) {
	k := keysOnce()
	f, _ := newTestFilter(t, nil)
	for _, tc := range []struct {
		name   string
		claims jwtlib.MapClaims
	}{
		{"expired within the leeway", with(good(), "exp", testNow.Add(-30*time.Second).Unix())},
		{"nbf within the leeway", with(good(), "nbf", testNow.Add(30*time.Second).Unix())},
		{"second audience", with(good(), "aud", []any{"other", "admin"})},
		{"role in an array", with(good(), "role", []any{"guest", "developer"})},
	} {
		tok := sign(t, jwtlib.SigningMethodES256, "e1", k.ec, tc.claims)
		if _, a := run(f, "bearer "+tok); a != nil {
			t.Errorf("%s: got %d %q, want the request to go on", tc.name, a.Status, filtertest.AnswerHeader(a.Header, "WWW-Authenticate"))
		}
	}
}

func FuzzToken(f *testing.F) {
	k := keysOnce()
	f.Add(sign(f, jwtlib.SigningMethodRS256, "r1", k.rsa, good()))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("....")
	f.Add(`eyJhbGciOiJSUzI1NiIsImtpZCI6WzFdfQ.eyJleHAiOnsiYSI6MX19.AAAA`)
	filt, _ := newTestFilter(f, func(o *Options) { o.HS256 = []byte("secret"); o.CacheSize = 8 })
	f.Fuzz(func(t *testing.T, tok string) {
		_, a := run(filt, "Bearer "+tok)
		if a != nil && a.Status != 401 && a.Status != 403 {
			t.Errorf("status %d", a.Status)
		}
		// Again, perhaps from the cache: the same answer.
		if _, again := run(filt, "Bearer "+tok); (a == nil) != (again == nil) || a != nil && a.Status != again.Status {
			t.Errorf("got %v, then %v", a, again)
		}
	})
}

func BenchmarkVerifyES256(b *testing.B) {
	k := keysOnce()
	f, _ := newTestFilter(b, nil)
	tok := sign(b, jwtlib.SigningMethodES256, "e1", k.ec, good())
	r := filtertest.NewRequest("api", "192.0.2.1", "/", "Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if a := f.Request(context.Background(), r); a != nil {
			b.Fatal(a.Status)
		}
	}
}

func BenchmarkVerifyRS256(b *testing.B) {
	k := keysOnce()
	f, _ := newTestFilter(b, nil)
	tok := sign(b, jwtlib.SigningMethodRS256, "r1", k.rsa, good())
	r := filtertest.NewRequest("api", "192.0.2.1", "/", "Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if a := f.Request(context.Background(), r); a != nil {
			b.Fatal(a.Status)
		}
	}
}

func BenchmarkVerifyES256Cached(b *testing.B) {
	benchmarkCached(b, jwtlib.SigningMethodES256, "e1", keysOnce().ec)
}

func BenchmarkVerifyRS256Cached(b *testing.B) {
	benchmarkCached(b, jwtlib.SigningMethodRS256, "r1", keysOnce().rsa)
}

// benchmarkCached measures a hit: the token was verified before the loop.
func benchmarkCached(b *testing.B, method jwtlib.SigningMethod, kid string, key any) {
	f, _ := newTestFilter(b, func(o *Options) { o.CacheSize = 1000 })
	tok := sign(b, method, kid, key, good())
	r := filtertest.NewRequest("api", "192.0.2.1", "/", "Authorization", "Bearer "+tok)
	if a := f.Request(context.Background(), r); a != nil {
		b.Fatal(a.Status)
	}
	b.ReportAllocs()
	for b.Loop() {
		if a := f.Request(context.Background(), r); a != nil {
			b.Fatal(a.Status)
		}
	}
	if f.verifies.Load() != 1 {
		b.Fatalf("got %d verifications, want 1", f.verifies.Load())
	}
}
