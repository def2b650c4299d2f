package config

import (
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Compress is a route's compress block: the response compression filter
// (SPEC §13).
type Compress struct {
	// Encodings in the route's order of preference among those the client
	// accepts: "zstd", "br", "gzip". Default ["zstd", "br", "gzip"].
	Encodings []string
	// MinBytes: smaller bodies are sent as they are; default 1024.
	MinBytes int64
	// Types are the media types compressed, lower-case, without
	// parameters; "text/*" matches every text type. Default
	// DefaultCompressTypes.
	Types []string

	DefRange hcl.Range // the block, for messages
}

// Cache is a route's cache block: the RFC 9111 shared response cache
// (SPEC §13).
type Cache struct {
	MaxBytes       int64  // memory tier bound (LRU by size); default 64 MiB
	MaxObjectBytes int64  // larger responses stream through unstored; default 1 MiB, at most MaxBytes
	Store          string // "memory" (default) or "redis": a shared tier behind memory
	// CollapseTimeout bounds how long a request waits for another request
	// fetching the same object before going upstream itself; 0 turns
	// collapsing off. Default 5s (nginx's proxy_cache_lock_timeout).
	CollapseTimeout time.Duration

	DefRange hcl.Range // the block, for messages
}

// Compression encodings, stores and defaults.
const (
	EncodingZstd   = "zstd"
	EncodingBrotli = "br"
	EncodingGzip   = "gzip"

	CacheStoreMemory = "memory"
	CacheStoreRedis  = "redis"

	DefaultCompressMinBytes     = 1024
	DefaultCacheMaxBytes        = 64 << 20
	DefaultCacheMaxObjectBytes  = 1 << 20
	DefaultCacheCollapseTimeout = 5 * time.Second
)

// DefaultCompressTypes are the media types compressed when a compress block
// lists none: text and the common structured text formats (what nginx
// users list in gzip_types).
var DefaultCompressTypes = []string{"text/*", "application/json", "application/javascript",
	"application/xml", "application/wasm", "image/svg+xml"}

var compressEncodings = []string{EncodingZstd, EncodingBrotli, EncodingGzip}

type rawCompress struct {
	Encodings *hcl.Attribute `hcl:"encodings,optional"`
	MinBytes  *hcl.Attribute `hcl:"min_bytes,optional"`
	Types     *hcl.Attribute `hcl:"types,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawCache struct {
	MaxBytes        *hcl.Attribute `hcl:"max_bytes,optional"`
	MaxObjectBytes  *hcl.Attribute `hcl:"max_object_bytes,optional"`
	Store           *hcl.Attribute `hcl:"store,optional"`
	CollapseTimeout *hcl.Attribute `hcl:"collapse_timeout,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// filtersPart2 decodes a route's compress and cache blocks (at most one
// each).
func (d *decoder) filtersPart2(rr *rawRoute, r *Route) {
	c, extra, more := onlyOne(rr.Compress, "compress", func(b *rawCompress) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if c != nil {
		r.Compress = d.compress(c)
	}
	for _, b := range extra {
		d.compress(b)
	}
	k, extraK, more := onlyOne(rr.Cache, "cache", func(b *rawCache) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if k != nil {
		r.Cache = d.cache(k)
	}
	for _, b := range extraK {
		d.cache(b)
	}
}

func (d *decoder) compress(rc *rawCompress) *Compress {
	c := &Compress{Encodings: compressEncodings, MinBytes: DefaultCompressMinBytes,
		Types: DefaultCompressTypes, DefRange: rc.DefRange}
	seen := make(map[string]bool)
	if d.strList(rc.Encodings, &c.Encodings, "Unknown encoding", func(s string) error {
		if _, err := oneOf("encodings", compressEncodings...)(s); err != nil {
			return reject("The encodings must each be one of %s, not %q", quoteList(compressEncodings), s)
		}
		if seen[s] {
			return reject("The encoding %q is listed twice", s)
		}
		seen[s] = true
		return nil
	}) && len(c.Encodings) == 0 {
		d.errorf(rc.Encodings.Expr.Range(), "No encodings",
			"A compress block needs at least one encoding; remove the block to turn compression off.")
	}
	d.byteSize(rc.MinBytes, &c.MinBytes)
	var types []string
	if d.strList(rc.Types, &types, "Invalid media type", func(s string) error {
		_, err := mediaRange(s)
		return err
	}) {
		c.Types = make([]string, len(types))
		for i, s := range types {
			c.Types[i], _ = mediaRange(s)
		}
		if len(c.Types) == 0 {
			d.errorf(rc.Types.Expr.Range(), "No media types",
				`A compress block needs at least one media type, such as types = ["text/*"].`)
		}
	}
	return c
}

// mediaRange checks a compress type: "type/subtype" or "type/*", without
// parameters, returned lower-case.
func mediaRange(s string) (string, error) {
	bad := reject(`A media type must be "type/subtype" or "type/*" without parameters, such as "application/json" or "text/*", not %q`, s)
	t, params, err := mime.ParseMediaType(s)
	if err != nil || len(params) > 0 || strings.Contains(s, ";") {
		return "", bad
	}
	major, minor, ok := strings.Cut(t, "/")
	if !ok || major == "" || minor == "" || major == "*" || strings.Contains(minor, "*") && minor != "*" {
		return "", bad
	}
	return t, nil
}

func (d *decoder) cache(rc *rawCache) *Cache {
	c := &Cache{MaxBytes: DefaultCacheMaxBytes, MaxObjectBytes: DefaultCacheMaxObjectBytes,
		Store: CacheStoreMemory, CollapseTimeout: DefaultCacheCollapseTimeout, DefRange: rc.DefRange}
	maxOK := d.byteSize(rc.MaxBytes, &c.MaxBytes)
	if maxOK && c.MaxBytes == 0 {
		d.errorf(rc.MaxBytes.Expr.Range(), "Invalid max_bytes",
			"The max_bytes attribute must be at least 1; remove the cache block to turn caching off.")
	}
	objOK := d.byteSize(rc.MaxObjectBytes, &c.MaxObjectBytes)
	if objOK && c.MaxObjectBytes == 0 {
		d.errorf(rc.MaxObjectBytes.Expr.Range(), "Invalid max_object_bytes",
			"The max_object_bytes attribute must be at least 1.")
	}
	if c.MaxObjectBytes > c.MaxBytes && c.MaxBytes > 0 {
		subject := rc.DefRange
		if rc.MaxObjectBytes != nil {
			subject = rc.MaxObjectBytes.Expr.Range()
		}
		if rc.MaxObjectBytes != nil || rc.MaxBytes != nil {
			d.errorf(subject, "Invalid max_object_bytes",
				"An object cannot be larger than the whole cache: max_object_bytes (%d) must be at most max_bytes (%d).", c.MaxObjectBytes, c.MaxBytes)
		}
	}
	d.str(rc.Store, &c.Store, "Unknown cache store", oneOf("store", CacheStoreMemory, CacheStoreRedis))
	d.duration(rc.CollapseTimeout, &c.CollapseTimeout, nonNegative)
	return c
}

// checkCacheRedis rejects store = "redis" without a top-level redis block.
func (d *decoder) checkCacheRedis(raw *rawConfig, cfg *Config) {
	if cfg.Redis != nil || raw.Redis != nil {
		return // a broken redis block has its own diagnostic
	}
	for _, rr := range raw.Routes {
		for _, rc := range rr.Cache {
			if rc.Store == nil {
				continue
			}
			if v, diags := rc.Store.Expr.Value(nil); !diags.HasErrors() && v.Type().FriendlyName() == "string" && !v.IsNull() && v.AsString() == CacheStoreRedis {
				d.add(problem(rc.Store.Expr.Range(), "Missing redis block",
					fmt.Sprintf(`Route %q caches with store = "redis", which needs a top-level redis block such as redis { address = "127.0.0.1:6379" }.`, rr.Name)))
			}
		}
	}
}
