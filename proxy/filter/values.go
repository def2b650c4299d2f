package filter

// Per-request values that filters hand to later filters and to the core,
// through Request.Set and Request.Value.

type (
	claimsKey     struct{}
	answeredByKey struct{}
)

// SetClaims stores a request's verified JWT claims (the jwt filter calls it
// once the token is verified). The map must not be modified afterwards.
func SetClaims(r Request, claims map[string]any) { r.Set(claimsKey{}, claims) }

// Claims returns the verified JWT claims of the request, or nil when no jwt
// filter verified a token. The map must not be modified.
func Claims(r Request) map[string]any {
	c, _ := r.Value(claimsKey{}).(map[string]any)
	return c
}

// MarkAnswered records which filter answered the request (its kind, such as
// "jwt"), for the access log; filters call it with the Answer they return.
func MarkAnswered(r Request, filter string) { r.Set(answeredByKey{}, filter) }

// AnsweredBy is the kind of filter that answered the request, or "" (the
// core reads it when Chain.Request returned an Answer, for the access log).
func AnsweredBy(r Request) string {
	s, _ := r.Value(answeredByKey{}).(string)
	return s
}
