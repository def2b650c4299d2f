package config

import (
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// RateLimit is a rate_limit filter: a token bucket per key that holds at
// most Burst tokens and gains Rate tokens every Per; each request takes
// one, and a request finding the bucket empty gets 429.
type RateLimit struct {
	Rate  int           // tokens added every Per; at least 1
	Per   time.Duration // default 1s
	Burst int           // bucket size; default Rate
	// Key says what is limited: KeyClientIP, KeyRoute, KeyHeader or
	// KeyClaim (then KeyName names the header or claim). A request
	// without that header or claim is not limited by this filter, as in
	// nginx's limit_req; add a key = "route" filter to bound those too.
	Key     string
	KeyName string // canonical for a header
	Store   string // StoreLocal (default) or StoreRedis
	// MaxKeys bounds the keys a local store keeps (and the fallback
	// buckets of a redis store); beyond it the idlest keys are forgotten.
	// Default 100000.
	MaxKeys int
	// KeyRange is the key attribute's range (or the block's), for the
	// claim-without-jwt diagnostic of later stages.
	KeyRange hcl.Range
}

// Rate-limit keys and stores.
const (
	KeyClientIP = "client_ip"
	KeyRoute    = "route"
	KeyHeader   = "header"
	KeyClaim    = "claim"

	StoreLocal = "local"
	StoreRedis = "redis"

	DefaultRateLimitMaxKeys = 100000
)

type rawRateLimit struct {
	Rate    *hcl.Attribute `hcl:"rate,optional"`
	Per     *hcl.Attribute `hcl:"per,optional"`
	Burst   *hcl.Attribute `hcl:"burst,optional"`
	Key     *hcl.Attribute `hcl:"key,optional"`
	Store   *hcl.Attribute `hcl:"store,optional"`
	MaxKeys *hcl.Attribute `hcl:"max_keys,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

func (d *decoder) rateLimitFilter(rr *rawRateLimit, earlier []Filter, cfg *Config) *Filter {
	before := len(d.diags)
	r := &RateLimit{Per: time.Second, Key: KeyClientIP, Store: StoreLocal, MaxKeys: DefaultRateLimitMaxKeys, KeyRange: rr.DefRange}
	rateBefore := len(d.diags)
	if !d.integer(rr.Rate, &r.Rate, 1, 1_000_000_000) && len(d.diags) == rateBefore {
		d.required(rr.Rate, "rate", rr.DefRange, `A rate_limit needs a rate: the requests allowed every per (default "1s"), such as rate = 100.`)
	}
	d.duration(rr.Per, &r.Per, durationRule{max: 24 * time.Hour})
	if rr.Per != nil && r.Per < time.Millisecond {
		d.errorf(rr.Per.Expr.Range(), "Invalid duration", "The per attribute must be at least 1ms.")
	}
	r.Burst = r.Rate
	d.integer(rr.Burst, &r.Burst, 1, 1_000_000_000)
	var key string
	if d.str(rr.Key, &key, "Invalid rate-limit key", rateLimitKey) {
		r.Key, r.KeyName, _ = strings.Cut(key, ":")
		if r.Key == KeyHeader {
			r.KeyName, _ = headerName("")(r.KeyName)
		}
		r.KeyRange = rr.Key.Expr.Range()
	}
	d.str(rr.Store, &r.Store, "Unknown rate-limit store", oneOf("store", StoreLocal, StoreRedis))
	d.integer(rr.MaxKeys, &r.MaxKeys, 1, 100_000_000)
	if len(d.diags) != before {
		return nil
	}
	if r.Key == KeyClaim && findFilter(earlier, FilterJWT) == nil {
		d.errorf(r.KeyRange, "Claim key without jwt",
			"The key claim:%s reads a verified JWT claim, so a jwt block must come before this rate_limit in the route (filters run in the order written).", r.KeyName)
		return nil
	}
	if r.Store == StoreRedis && cfg.Redis == nil {
		d.errorf(rr.Store.Expr.Range(), "Redis store without a redis block",
			`The store "redis" shares the limit through the top-level redis block, which is missing; add redis { address = "127.0.0.1:6379" }, or use store = "local".`)
		return nil
	}
	return &Filter{Kind: FilterRateLimit, Range: rr.DefRange, RateLimit: r}
}

// rateLimitKey checks rate_limit.key.
func rateLimitKey(s string) (string, error) {
	kind, name, hasName := strings.Cut(s, ":")
	bad := reject(`The key must be "client_ip", "route", "header:NAME" or "claim:NAME", not %q`, s)
	switch kind {
	case KeyClientIP, KeyRoute:
		if hasName {
			return "", bad
		}
	case KeyHeader:
		if _, err := headerName("header name")(name); err != nil {
			return "", reject("In key %q: %s", s, err)
		}
	case KeyClaim:
		if name == "" || hasSpaceOrControl(name) {
			return "", reject("In key %q: the claim name must be non-empty without white space", s)
		}
	default:
		return "", bad
	}
	return s, nil
}
