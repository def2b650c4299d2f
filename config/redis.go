package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Redis is the top-level redis block: the Redis server that a fleet of
// ferries shares state through (rate_limit with store = "redis"). Only one
// connection target exists per configuration; each filter that uses Redis
// keeps its keys under its own prefix.
type Redis struct {
	Address string // host:port; required
	DB      int    // database number; default 0
	// PasswordFile holds the password (AUTH), read when the client is
	// built and never logged; "" sends none. A trailing newline is ignored.
	PasswordFile string
	// Timeout bounds each command (dial, read and write); past it a filter
	// applies its failure policy. Default 100ms.
	Timeout time.Duration
}

// DefaultRedisTimeout is redis.timeout's default: long enough for a Redis
// in the same region, short enough that a stalled Redis adds little to a
// request before the rate limiter falls back to its local bucket.
const DefaultRedisTimeout = 100 * time.Millisecond

type rawRedis struct {
	Address      *hcl.Attribute `hcl:"address,optional"`
	DB           *hcl.Attribute `hcl:"db,optional"`
	PasswordFile *hcl.Attribute `hcl:"password_file,optional"`
	Timeout      *hcl.Attribute `hcl:"timeout,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// redisBlocks decodes the redis block and checks duplicates' content.
func (d *decoder) redisBlocks(raw *rawConfig, cfg *Config) {
	if raw.Redis != nil {
		cfg.Redis = d.redis(raw.Redis)
	}
	for _, b := range raw.extraRedis {
		d.redis(b)
	}
}

func (d *decoder) redis(rr *rawRedis) *Redis {
	r := &Redis{Timeout: DefaultRedisTimeout}
	d.requiredStr(rr.Address, "address", rr.DefRange, &r.Address, "Invalid Redis address",
		`A redis block needs the server's address, such as address = "127.0.0.1:6379".`, redisAddress)
	d.integer(rr.DB, &r.DB, 0, 1<<16)
	d.str(rr.PasswordFile, &r.PasswordFile, "Invalid password_file", func(s string) (string, error) {
		if s == "" || hasSpaceOrControl(s) {
			return "", reject(`The password_file must be a file path, not %q`, s)
		}
		return s, nil
	})
	d.duration(rr.Timeout, &r.Timeout, durationRule{max: time.Minute})
	return r
}

// redisAddress checks a Redis address: host:port with a port from 1 to
// 65535 (a unix socket is not supported).
func redisAddress(s string) (string, error) {
	if _, err := checkTCP(s); err != nil {
		return "", reject("The address must be a host and a port from 1 to 65535, such as %q, not %q", "127.0.0.1:6379", s)
	}
	return s, nil
}
