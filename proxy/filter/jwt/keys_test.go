package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"sync"
	"testing"

	jwtlib "github.com/golang-jwt/jwt/v5"
)

// testKeys are generated once per test binary: RSA generation is slow
// under the race detector.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var keysOnce = sync.OnceValue(func() *testKeys {
	k := &testKeys{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	b, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": enc(k)}
}

func jwks(keys ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// sign makes a token.
func sign(t testing.TB, method jwtlib.SigningMethod, kid string, key any, claims jwtlib.MapClaims) string {
	t.Helper()
	tok := jwtlib.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func TestParseJWKS(t *testing.T) {
	k := keysOnce()
	ks, err := ParseJWKS(jwks(
		rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey), edJWK("d1", k.ed.Public().(ed25519.PublicKey)),
		map[string]any{"kty": "oct", "kid": "s", "k": enc([]byte("secret"))},         // never from a key set
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": "x", "e": "y"}, // encryption key: skipped
		map[string]any{"kty": "EC", "kid": "p384", "crv": "P-384", "x": "x", "y": "y"},
	))
	if err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 3 || len(ks.candidates("r1", "RS256")) != 1 || len(ks.candidates("r1", "ES256")) != 0 ||
		len(ks.candidates("", "EdDSA")) != 1 || ks.has("s") {
		t.Errorf("got %d keys: %+v", ks.Len(), ks.keys)
	}
	for _, tc := range []struct {
		name string
		doc  string
	}{
		{"not json", "{"},
		{"no usable key", `{"keys":[{"kty":"oct","k":"AAAA"}]}`},
		{"empty", `{"keys":[]}`},
		{"bad modulus", `{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}`},
		{"even exponent", `{"keys":[{"kty":"RSA","n":"` + enc(k.rsa.N.Bytes()) + `","e":"Ag"}]}`},
		{"short RSA", `{"keys":[{"kty":"RSA","n":"` + enc(big.NewInt(1<<62).Bytes()) + `","e":"AQAB"}]}`},
		{"point off the curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + enc(make([]byte, 32)) + `","y":"` + enc(make([]byte, 32)) + `"}]}`},
		{"short ed25519", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`},
	} {
		if _, err := ParseJWKS([]byte(tc.doc)); err == nil {
			t.Errorf("%s: got no error", tc.name)
		}
	}
}

func TestKeySetSameKeys(t *testing.T) {
	k := keysOnce()
	r1, e1 := rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey)
	d1 := edJWK("d1", k.ed.Public().(ed25519.PublicKey))
	parse := func(keys ...map[string]any) *KeySet {
		t.Helper()
		ks, err := ParseJWKS(jwks(keys...))
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	base := parse(r1, e1, d1)
	otherE := rsaJWK("r1", &k.rsa.PublicKey)
	otherE["e"] = enc(big.NewInt(3).Bytes())
	for _, tc := range []struct {
		name string
		set  *KeySet
		same bool
	}{
		{"the same document", parse(r1, e1, d1), true},
		{"with a key ferry skips", parse(r1, e1, d1, map[string]any{"kty": "oct", "kid": "s", "k": "AAAA"}), true},
		{"another order", parse(e1, r1, d1), false},
		{"a key fewer", parse(r1, e1), false},
		{"a key more", parse(r1, e1, d1, rsaJWK("r2", &k.rsa2.PublicKey)), false},
		{"another RSA key under the kid", parse(rsaJWK("r1", &k.rsa2.PublicKey), e1, d1), false},
		{"another exponent", parse(otherE, e1, d1), false},
		{"another kid", parse(rsaJWK("r9", &k.rsa.PublicKey), e1, d1), false},
		{"no set", nil, false},
	} {
		if got := base.sameKeys(tc.set); got != tc.same {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.same)
		}
		if got := tc.set.sameKeys(base); got != tc.same {
			t.Errorf("%s, the other way: got %v, want %v", tc.name, got, tc.same)
		}
	}
	var none *KeySet
	if !none.sameKeys(nil) {
		t.Error("two nil sets differ")
	}
}
