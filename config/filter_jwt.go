package config

import (
	"net/url"
	"sort"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// JWT is a jwt filter: bearer tokens verified with keys from a JWKS (a
// file, or a URL fetched in the background) and/or an HS256 shared secret.
// At least one key source is set; JWKSFile and JWKSURL are not both set.
type JWT struct {
	Issuer    string   // "" accepts any issuer
	Audiences []string // nil accepts any audience; else the token names one of them
	JWKSFile  string
	JWKSURL   string        // http:// or https://
	Refresh   time.Duration // how often JWKSURL is fetched again; default 5m
	// HS256SecretFile and HS256SecretEnv name where the HS256 secret is
	// (at most one is set): the secret itself is never in the
	// configuration, so that it is never printed with it.
	HS256SecretFile string
	HS256SecretEnv  string
	// Leeway is the clock skew allowed on exp, nbf and iat; default 60s.
	Leeway time.Duration
	// RequireClaims: for each claim, the token's value (a string, or an
	// array of strings) holds one of the listed values; else 403.
	RequireClaims map[string][]string
	// ForwardClaims maps a claim to the request header it is copied into;
	// a client-sent header of that name is removed first.
	ForwardClaims []ClaimHeader
	// CacheSize is how many verified tokens the filter keeps, so that a
	// token sent again is not verified again; 0 keeps none. Default 1000.
	CacheSize int
}

// ClaimHeader is one forward_claims entry.
type ClaimHeader struct {
	Claim  string
	Header string // canonical
}

// Defaults of the jwt block, following Envoy's jwt_authn (clock_skew 60s,
// remote JWKS cache 5m). The token cache is larger than Envoy's
// jwt_cache_size (100): a sidecar or edge route sees many clients, and an
// entry is small (the claims and a 32-byte hash).
const (
	DefaultJWTLeeway      = 60 * time.Second
	DefaultJWKSRefresh    = 5 * time.Minute
	DefaultJWTCacheSize   = 1000
	maxJWTLeeway          = 5 * time.Minute
	minJWKSRefresh        = 10 * time.Second
	maxJWTRequiredClaims  = 64
	maxJWTClaimValueCount = 1024
	maxJWTCacheSize       = 1_000_000
)

type rawJWT struct {
	Issuer          *hcl.Attribute `hcl:"issuer,optional"`
	Audiences       *hcl.Attribute `hcl:"audiences,optional"`
	JWKSFile        *hcl.Attribute `hcl:"jwks_file,optional"`
	JWKSURL         *hcl.Attribute `hcl:"jwks_url,optional"`
	JWKSRefresh     *hcl.Attribute `hcl:"jwks_refresh,optional"`
	HS256SecretFile *hcl.Attribute `hcl:"hs256_secret_file,optional"`
	HS256SecretEnv  *hcl.Attribute `hcl:"hs256_secret_env,optional"`
	Leeway          *hcl.Attribute `hcl:"leeway,optional"`
	RequireClaims   *hcl.Attribute `hcl:"require_claims,optional"`
	ForwardClaims   *hcl.Attribute `hcl:"forward_claims,optional"`
	CacheSize       *hcl.Attribute `hcl:"cache_size,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

func (d *decoder) jwtFilter(rj *rawJWT, earlier []Filter) *Filter {
	before := len(d.diags)
	if first := findFilter(earlier, FilterJWT); first != nil {
		d.errorf(rj.DefRange, "Duplicate jwt block",
			"A route verifies one kind of token, so it has at most one jwt block; %s.", firstDefinedHere(first.Range))
	}
	j := &JWT{Leeway: DefaultJWTLeeway, Refresh: DefaultJWKSRefresh, CacheSize: DefaultJWTCacheSize}
	d.str(rj.Issuer, &j.Issuer, "Invalid issuer", noSpace("issuer"))
	d.strList(rj.Audiences, &j.Audiences, "Invalid audience", func(s string) error {
		if s == "" {
			return reject("An audience must not be empty")
		}
		return nil
	})
	fileOK := d.str(rj.JWKSFile, &j.JWKSFile, "Invalid jwks_file", filePath("jwks_file"))
	urlOK := d.str(rj.JWKSURL, &j.JWKSURL, "Invalid jwks_url", jwksURL)
	d.duration(rj.JWKSRefresh, &j.Refresh, durationRule{max: 24 * time.Hour})
	if rj.JWKSRefresh != nil && j.Refresh < minJWKSRefresh {
		d.errorf(rj.JWKSRefresh.Expr.Range(), "Invalid duration", "The jwks_refresh attribute must be at least %s.", minJWKSRefresh)
	}
	secretFileOK := d.str(rj.HS256SecretFile, &j.HS256SecretFile, "Invalid hs256_secret_file", filePath("hs256_secret_file"))
	secretEnvOK := d.str(rj.HS256SecretEnv, &j.HS256SecretEnv, "Invalid hs256_secret_env", envName)
	d.duration(rj.Leeway, &j.Leeway, durationRule{zeroOK: true, max: maxJWTLeeway})
	j.RequireClaims = d.requireClaims(rj.RequireClaims)
	j.ForwardClaims = d.forwardClaims(rj.ForwardClaims)
	d.integer(rj.CacheSize, &j.CacheSize, 0, maxJWTCacheSize)

	switch {
	case fileOK && urlOK:
		d.errorf(rj.JWKSURL.NameRange, "Conflicting key sources",
			"A jwt block reads its key set from jwks_file or jwks_url, not both; jwks_file is set at %s.", posString(rj.JWKSFile.NameRange))
	case secretFileOK && secretEnvOK:
		d.errorf(rj.HS256SecretEnv.NameRange, "Conflicting secret sources",
			"The HS256 secret comes from hs256_secret_file or hs256_secret_env, not both; hs256_secret_file is set at %s.", posString(rj.HS256SecretFile.NameRange))
	case len(d.diags) == before && !fileOK && !urlOK && !secretFileOK && !secretEnvOK:
		d.errorf(rj.DefRange, "Missing keys",
			`A jwt block needs the keys to verify tokens with: jwks_file (a JWKS JSON file), jwks_url (fetched and refreshed), and/or an HS256 secret from hs256_secret_file or hs256_secret_env.`)
	}
	if rj.JWKSRefresh != nil && !urlOK && len(d.diags) == before {
		d.errorf(rj.JWKSRefresh.NameRange, "jwks_refresh without jwks_url", "Only a key set fetched from jwks_url is refreshed; jwks_file is read when the configuration is loaded.")
	}
	if len(d.diags) != before {
		return nil
	}
	return &Filter{Kind: FilterJWT, Range: rj.DefRange, JWT: j}
}

// requireClaims decodes { claim = ["a", "b"] } or { claim = "a" }.
func (d *decoder) requireClaims(attr *hcl.Attribute) map[string][]string {
	const want = `a map from claim names to lists of accepted values, such as { role = ["admin", "developer"] }`
	v, ok := d.value(attr, cty.DynamicPseudoType, want)
	if !ok {
		return nil
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		d.errorf(attr.Expr.Range(), "Incorrect attribute value type", "The require_claims attribute must be %s.", want)
		return nil
	}
	if v.LengthInt() > maxJWTRequiredClaims {
		d.errorf(attr.Expr.Range(), "Invalid require_claims", "At most %d claims may be required.", maxJWTRequiredClaims)
		return nil
	}
	out := make(map[string][]string)
	for it := v.ElementIterator(); it.Next(); {
		kv, el := it.Element()
		k := kv.AsString()
		rng := itemRange(attr.Expr, k)
		if k == "" {
			d.errorf(rng, "Invalid require_claims", "A claim name must not be empty.")
			continue
		}
		if s, err := convert.Convert(el, cty.String); err == nil && !s.IsNull() && !el.Type().IsTupleType() && !el.Type().IsListType() {
			out[k] = []string{s.AsString()}
			continue
		}
		list, err := convert.Convert(el, cty.List(cty.String))
		if err != nil || list.IsNull() || list.LengthInt() == 0 || list.LengthInt() > maxJWTClaimValueCount {
			d.errorf(rng, "Invalid require_claims", "The accepted values of claim %q must be a string or a non-empty list of strings.", k)
			continue
		}
		var vals []string
		for _, e := range list.AsValueSlice() {
			if e.IsNull() {
				d.errorf(rng, "Invalid require_claims", "The accepted values of claim %q must not be null.", k)
				vals = nil
				break
			}
			vals = append(vals, e.AsString())
		}
		if vals != nil {
			out[k] = vals
		}
	}
	return out
}

// forwardClaims decodes { claim = "Header-Name" }, sorted by claim.
func (d *decoder) forwardClaims(attr *hcl.Attribute) []ClaimHeader {
	var m map[string]string
	seen := make(map[string]string)
	if !d.strMap(attr, &m, "Invalid forward_claims", func(claim, header string) error {
		if claim == "" {
			return reject("A claim name must not be empty")
		}
		name, err := settableHeader("header name")(header)
		if err != nil {
			return err
		}
		if name == "Authorization" {
			return reject("Claims cannot be forwarded in Authorization, which carries the token")
		}
		if first, dup := seen[name]; dup {
			return reject("The claims %q and %q are both forwarded in %s", first, claim, name)
		}
		seen[name] = claim
		return nil
	}) {
		return nil
	}
	out := make([]ClaimHeader, 0, len(m))
	for c, h := range m {
		name, _ := headerName("")(h)
		out = append(out, ClaimHeader{Claim: c, Header: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Claim < out[j].Claim })
	return out
}

// filePath checks an attribute naming a file.
func filePath(what string) func(string) (string, error) {
	return func(s string) (string, error) {
		if s == "" || hasSpaceOrControl(s) || s[len(s)-1] == '/' {
			return "", reject("The %s must be a file path, not %q", what, s)
		}
		return s, nil
	}
}

// jwksURL checks jwt.jwks_url: an absolute http(s) URL.
func jwksURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || hasSpaceOrControl(s) {
		return "", reject("The jwks_url must be an https:// (or http://) URL such as %q, not %q", "https://auth.example.com/.well-known/jwks.json", s)
	}
	return s, nil
}

// envName checks the name of an environment variable.
func envName(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return "", reject("The hs256_secret_env must name an environment variable (letters, digits and \"_\", not starting with a digit), not %q", s)
		}
	}
	if s == "" {
		return "", reject("The hs256_secret_env must name an environment variable, not \"\"")
	}
	return s, nil
}
