package config

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Redis is the top-level redis block: shared state for a fleet of sidecars
// (SPEC §13), used by rate_limit and cache with store = "redis".
type Redis struct {
	Address      string        // host:port, required
	DB           int           // database number; default 0
	PasswordFile string        // a file holding the password; "" for none
	Timeout      time.Duration // bounds each command; default DefaultRedisTimeout
}

// DefaultRedisTimeout bounds a Redis command when the block sets no timeout:
// Redis is a nearby shared tier, so a slow answer is treated as no answer.
const DefaultRedisTimeout = 100 * time.Millisecond

type rawRedis struct {
	Address      *hcl.Attribute `hcl:"address,optional"`
	DB           *hcl.Attribute `hcl:"db,optional"`
	PasswordFile *hcl.Attribute `hcl:"password_file,optional"`
	Timeout      *hcl.Attribute `hcl:"timeout,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// redis decodes the redis block (a minimal decoder: filters part 1 owns the
// block and may extend it).
func (d *decoder) redis(rr *rawRedis) *Redis {
	r := &Redis{Timeout: DefaultRedisTimeout}
	d.requiredStr(rr.Address, "address", rr.DefRange, &r.Address, "Invalid Redis address",
		`A redis block needs the server's address, such as address = "127.0.0.1:6379".`, hostPort("Redis address"))
	d.integer(rr.DB, &r.DB, 0, 1<<16)
	d.str(rr.PasswordFile, &r.PasswordFile, "Invalid password_file", passwordFile)
	d.duration(rr.Timeout, &r.Timeout, positive)
	return r
}

// passwordFile checks redis.password_file: "" (no password) or a file path.
func passwordFile(s string) (string, error) {
	if strings.ContainsFunc(s, unicode.IsControl) || !utf8.ValidString(s) || strings.HasSuffix(s, "/") {
		return "", reject(`The password_file must be a file path (or "" for none), not %q`, s)
	}
	return s, nil
}
