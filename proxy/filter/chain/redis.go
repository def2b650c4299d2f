package chain

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ferry-proxy/ferry/config"
)

// NewRedisClient returns the client of the redis block, for Deps.Redis. It
// does not connect: a Redis that is down at start is the rate limiters'
// fallback case, not a start failure. Timeouts are the block's timeout; no
// retries (a failed command falls back at once). Close it on shutdown.
func NewRedisClient(c *config.Redis) (*redis.Client, error) {
	var password string
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redis password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	return redis.NewClient(&redis.Options{
		Addr: c.Address, DB: c.DB, Password: password,
		DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // none
		DisableIdentity:       true,
		// No CLIENT MAINT_NOTIFICATIONS handshake (Redis Enterprise only).
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}), nil
}

// SetRedisLogger sends go-redis's own messages (connection pool errors) to
// log at debug level instead of stderr: the rate limiters already log
// Redis failures once per outage. go-redis's logger is process-wide.
func SetRedisLogger(log hclog.Logger) {
	redis.SetLogger(redisLogger{log.Named("redis")})
}

type redisLogger struct{ log hclog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
