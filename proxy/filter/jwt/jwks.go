package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// KeySet is a parsed JSON Web Key Set (RFC 7517): the public keys tokens are
// verified with. It is immutable and safe for concurrent use. Only signing
// keys of the supported kinds are kept: RSA (RS256, at least 2048 bits),
// EC P-256 (ES256) and OKP Ed25519 (EdDSA); symmetric ("oct") keys are never
// taken from a key set, so a public key cannot be turned into an HMAC
// secret.
type KeySet struct {
	keys []jwk
}

type jwk struct {
	kid string
	alg string // the algorithm this key verifies
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// maxJWKSBytes bounds a key set read from a file or a URL.
const maxJWKSBytes = 1 << 20

// minRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
const minRSABits = 2048

// rawJWK is a key as written in a JWKS document.
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS parses a JWKS document. Keys of other kinds or uses are skipped;
// a document with no usable key is an error, as is a usable kind with a bad
// value (a wrong key must not go unnoticed).
func ParseJWKS(data []byte) (*KeySet, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("key set is larger than %d bytes", maxJWKSBytes)
	}
	var doc struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("key set is not a JWKS JSON document: %w", err)
	}
	ks := &KeySet{}
	for i, rk := range doc.Keys {
		if rk.Use != "" && rk.Use != "sig" {
			continue
		}
		k, err := parseJWK(rk)
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, rk.Kid, err)
		}
		if k != nil {
			ks.keys = append(ks.keys, *k)
		}
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("key set holds no RS256, ES256 or EdDSA signing key")
	}
	return ks, nil
}

// parseJWK returns nil, nil for a key of a kind ferry does not verify with.
func parseJWK(rk rawJWK) (*jwk, error) {
	k := &jwk{kid: rk.Kid}
	switch rk.Kty {
	case "RSA":
		if rk.Alg != "" && rk.Alg != "RS256" {
			return nil, nil
		}
		n, err := b64int(rk.N)
		if err != nil {
			return nil, fmt.Errorf("modulus n: %w", err)
		}
		e, err := b64int(rk.E)
		if err != nil || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, errors.New("exponent e is not a valid RSA public exponent")
		}
		if n.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d are required", n.BitLen(), minRSABits)
		}
		k.alg, k.key = "RS256", &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		if rk.Crv != "P-256" || rk.Alg != "" && rk.Alg != "ES256" {
			return nil, nil
		}
		x, errX := b64(rk.X)
		y, errY := b64(rk.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("P-256 coordinates x and y must be 32 bytes each, base64url")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("the point is not on the P-256 curve")
		}
		k.alg, k.key = "ES256", pub
	case "OKP":
		if rk.Crv != "Ed25519" || rk.Alg != "" && rk.Alg != "EdDSA" && rk.Alg != "Ed25519" {
			return nil, nil
		}
		x, err := b64(rk.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("Ed25519 key x must be 32 bytes, base64url")
		}
		k.alg, k.key = "EdDSA", ed25519.PublicKey(x)
	default:
		return nil, nil
	}
	return k, nil
}

// candidates are the keys that may have signed a token with this kid and
// alg: with a kid, the keys of that kid; without one, every key of the
// algorithm (key sets with one key per algorithm often omit kid).
func (ks *KeySet) candidates(kid, alg string) []any {
	if ks == nil {
		return nil
	}
	var out []any
	for _, k := range ks.keys {
		if k.alg == alg && (kid == "" || k.kid == kid) {
			out = append(out, k.key)
		}
	}
	return out
}

// has reports whether the set holds a key with this kid.
func (ks *KeySet) has(kid string) bool {
	if ks == nil {
		return false
	}
	for _, k := range ks.keys {
		if k.kid == kid {
			return true
		}
	}
	return false
}

// sameKeys reports whether two sets hold the same usable keys in the same
// order: kid, algorithm and public key (the crypto packages' Equal). A
// refresh that brings the same keys keeps the set in use, and with it the
// entries of the filters' caches, which are tied to the *KeySet.
func (ks *KeySet) sameKeys(o *KeySet) bool {
	if ks == nil || o == nil {
		return ks == o
	}
	if len(ks.keys) != len(o.keys) {
		return false
	}
	for i, a := range ks.keys {
		b := o.keys[i]
		eq, ok := a.key.(interface{ Equal(crypto.PublicKey) bool })
		if a.kid != b.kid || a.alg != b.alg || !ok || !eq.Equal(b.key) {
			return false
		}
	}
	return true
}

// Len is the number of usable keys.
func (ks *KeySet) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.keys)
}

// b64 decodes base64url, with or without padding (RFC 7515 says without,
// some issuers pad).
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func b64int(s string) (*big.Int, error) {
	b, err := b64(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("not a base64url number")
	}
	return new(big.Int).SetBytes(b), nil
}
