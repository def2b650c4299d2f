package cache

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/config"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

// redisServer is a redis-server this test started, on a free loopback
// port with a temporary directory and no persistence.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin := "/usr/bin/redis-server"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("redis-server is needed (Debian package redis-server): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &redisServer{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	waitFor(t, "redis-server to accept", func() bool {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// stop kills the server by its PID and waits for it.
func (s *redisServer) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.done
}

// TestRedisTier: two caches (two sidecars) share hits through Redis; when
// Redis dies, both keep serving from memory and count the errors.
func TestRedisTier(t *testing.T) {
	// Registered first, so it runs after every other cleanup: the
	// servers, the clients and Redis are closed by then.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	srv := startRedis(t)
	rdb, err := NewRedisClient(config.Redis{Address: srv.addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })

	cfg := testConfig()
	cfg.Store = "redis"
	var upstream atomic.Int32
	handler := func(w http.ResponseWriter, r *http.Request) {
		upstream.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "%s %s", r.URL.Path, r.Header.Get("Accept-Language"))
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: hclog.DefaultOutput, Level: hclog.Warn})
	a := newEnv(t, cfg, Deps{Redis: rdb, KeyPrefix: "t:", Logger: logger}, handler)
	b := newEnv(t, cfg, Deps{Redis: rdb, KeyPrefix: "t:", Logger: logger, Now: a.clock.Now}, handler)
	b.clock = a.clock

	get := func(e *env, path, lang string) result {
		t.Helper()
		r := e.do("GET", path, "Accept-Language", lang, "Host", "shop.test") // one site, two sidecars
		if r.err != nil || r.body != path+" "+lang {
			t.Fatalf("GET %s (%s): %q, %v", path, lang, r.body, r.err)
		}
		return r
	}
	xc := func(r result, want string) {
		t.Helper()
		if got := r.header.Get("X-Cache"); got != want {
			t.Errorf("X-Cache: got %q, want %q", got, want)
		}
	}
	xc(get(a, "/p", "en"), "MISS")
	a.clock.advance(5 * time.Second)
	r := get(b, "/p", "en") // b's memory is empty: the hit comes from Redis
	xc(r, "HIT")
	if r.header.Get("Age") != "5" {
		t.Errorf("Age through Redis: got %q, want 5", r.header.Get("Age"))
	}
	xc(get(b, "/p", "fr"), "MISS") // another variant
	xc(get(a, "/p", "fr"), "HIT")  // stored by b
	if upstream.Load() != 2 || b.f.Stats().RedisHits != 1 || a.f.Stats().RedisHits != 1 {
		t.Errorf("upstream %d, redis hits a %d b %d; want 2, 1, 1", upstream.Load(), a.f.Stats().RedisHits, b.f.Stats().RedisHits)
	}

	// Invalidation through one sidecar reaches the other's shared tier
	// (its memory tier keeps what it had until it expires or is purged).
	a.do("DELETE", "/p", "Host", "shop.test")
	if n, _ := rdb.Exists(context.Background(), "t:v:"+urlKey("shop.test", "/p", "")).Result(); n != 0 {
		t.Errorf("the shared entry survived a DELETE")
	}

	// TTL: remaining freshness, and no stale window.
	get(a, "/ttl", "en")
	keys, _ := rdb.Keys(context.Background(), "t:o:*").Result()
	for _, k := range keys {
		if ttl, _ := rdb.TTL(context.Background(), k).Result(); ttl <= 0 || ttl > 61*time.Second {
			t.Errorf("TTL of %s: %v", k, ttl)
		}
	}

	// Redis dies: both sidecars keep working from memory and upstream.
	srv.stop()
	xc(get(a, "/ttl", "en"), "HIT") // memory
	xc(get(b, "/q", "en"), "MISS")
	xc(get(b, "/q", "en"), "HIT") // stored in memory though Redis is down
	if a.f.Stats().RedisErrors+b.f.Stats().RedisErrors == 0 {
		t.Error("no Redis errors counted")
	}
}

// TestRedisDownAtStart: a cache whose Redis never answers works from
// memory; requests do not wait for Redis once it failed.
func TestRedisDownAtStart(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connections are refused
	rdb, _ := NewRedisClient(config.Redis{Address: addr, Timeout: 200 * time.Millisecond})
	defer rdb.Close()
	cfg := testConfig()
	cfg.Store = "redis"
	e := newEnv(t, cfg, Deps{Redis: rdb}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("x"))
	})
	e.expect(e.do("GET", "/r"), "MISS", 1)
	e.expect(e.do("GET", "/r"), "HIT", 1)
	if s := e.f.Stats(); s.RedisErrors == 0 {
		t.Errorf("stats: %+v, want Redis errors", s)
	}
}
