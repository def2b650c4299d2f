package config

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/hashicorp/hcl/v2"
)

// hostname names this machine in the default local service ID; a variable
// so that tests are independent of the machine.
var hostname = os.Hostname

// build turns the merged raw configuration into a Config with defaults
// applied, validating every value. It returns nil with the diagnostics when
// anything is wrong.
func build(raw *rawConfig) (*Config, hcl.Diagnostics) {
	d := &decoder{}
	cfg := Default()

	before := len(d.diags)
	d.str(raw.Listen, &cfg.Listen, "Invalid listen address", hostPort("listen address"))
	d.str(raw.Admin, &cfg.Admin, "Invalid admin address", adminAddress)
	if len(d.diags) == before {
		d.checkAdminListen(raw, cfg)
	}
	d.listeners(raw, cfg) // tls.go
	d.duration(raw.ShutdownTimeout, &cfg.ShutdownTimeout, nonNegative)
	d.boolean(raw.Pprof, &cfg.Pprof)
	d.boolean(raw.FastLane, &cfg.FastLane)
	d.edge(raw, cfg) // limits.go: trusted_proxies and the limits block

	if raw.Consul != nil {
		d.consul(raw.Consul, &cfg.Consul)
	}
	if raw.Log != nil {
		d.log(raw.Log, &cfg.Log)
	}
	for _, rs := range raw.Services {
		if s := d.service(rs); s != nil {
			cfg.Services[s.Name] = s
		}
	}
	d.redisBlocks(raw, cfg) // redis.go; before the routes, whose rate limits may use it
	d.routes(raw.Routes, cfg)
	if raw.LocalService != nil {
		cfg.LocalService = d.localService(raw.LocalService)
	}
	d.checkCacheRedis(raw, cfg)
	d.checkExtras(raw)

	if d.diags.HasErrors() {
		return nil, d.diags
	}
	return cfg, d.diags
}

// checkExtras checks the content of duplicate blocks, already reported by
// merge, so that their errors are reported too; the values are dropped.
func (d *decoder) checkExtras(raw *rawConfig) {
	for _, b := range raw.extraConsul {
		d.consul(b, &Consul{})
	}
	for _, b := range raw.extraLog {
		d.log(b, &Log{})
	}
	for _, b := range raw.extraServices {
		d.service(b)
	}
	for _, b := range raw.extraRoutes {
		d.route(b, &Config{Services: map[string]*Service{}, Redis: &Redis{}})
	}
	for _, b := range raw.extraLocal {
		d.localService(b)
	}
	for _, b := range raw.extraLimits {
		d.limits(b, &Limits{})
	}
}

// checkAdminListen rejects an admin API on the data-plane address.
func (d *decoder) checkAdminListen(raw *rawConfig, cfg *Config) {
	if cfg.Admin == "" || cfg.Admin != cfg.Listen {
		return
	}
	if _, port, err := net.SplitHostPort(cfg.Admin); err != nil || port == "0" {
		return // port 0: two different free ports
	}
	attr := raw.Admin
	if attr == nil {
		attr = raw.Listen
	}
	if attr == nil {
		return
	}
	d.errorf(attr.Expr.Range(), "Admin address is the listen address",
		"The admin API is never served on the data-plane listener; give admin another address than listen (%q), or \"\" to disable it.", cfg.Listen)
}

func (d *decoder) consul(rc *rawConsul, c *Consul) {
	d.str(rc.Address, &c.Address, "Invalid Consul address", noSpace("address"))
	d.str(rc.Datacenter, &c.Datacenter, "Invalid datacenter", noSpace("datacenter"))
	d.str(rc.Token, &c.Token, "Invalid Consul token", func(s string) (string, error) {
		if hasSpaceOrControl(s) {
			// Never echo a token.
			return "", reject("The token must not contain white space or control characters (check for a trailing newline)")
		}
		return s, nil
	})
	d.duration(rc.WaitTime, &c.WaitTime, durationRule{max: MaxWaitTime})
	d.boolean(rc.AllowStale, &c.AllowStale)
	d.boolean(rc.UseCache, &c.UseCache)
	d.integer(rc.MaxWatchConnections, &c.MaxWatchConnections, MinMaxWatchConnections, 100000)
	d.str(rc.SnapshotFile, &c.SnapshotFile, "Invalid snapshot_file", snapshotPath)
	d.boolean(rc.SnapshotReady, &c.SnapshotReady)
	d.consulTLS(rc, c) // tls.go
}

func (d *decoder) log(rl *rawLog, l *Log) {
	d.str(rl.Level, &l.Level, "Invalid log level", oneOf("level", logLevels...))
	d.str(rl.Format, &l.Format, "Invalid log format", oneOf("format", logFormats...))
	d.str(rl.AccessLog, &l.AccessLog, "Invalid access_log", accessLog)
}

// required reports a missing required attribute: absent from the block
// (subject: the block header) or set to null.
func (d *decoder) required(attr *hcl.Attribute, name string, block hcl.Range, detail string) {
	subject := block
	if attr != nil {
		subject = attr.Expr.Range()
	}
	d.add(problem(subject, fmt.Sprintf("Missing %s", name), detail))
}

// requiredStr is str for an attribute called name that must be set;
// missing is the detail of the diagnostic when it is absent or null.
func (d *decoder) requiredStr(attr *hcl.Attribute, name string, block hcl.Range, dst *string, summary, missing string, check func(string) (string, error)) bool {
	before := len(d.diags)
	if d.str(attr, dst, summary, check) {
		return true
	}
	if len(d.diags) == before { // absent or null, not invalid
		d.required(attr, name, block, missing)
	}
	return false
}

func (d *decoder) localService(rl *rawLocalService) *LocalService {
	ls := &LocalService{DeregisterDelay: DefaultDeregisterDelay}
	nameOK := d.requiredStr(rl.Name, "name", rl.DefRange, &ls.Name, "Invalid service name",
		`A local_service needs the Consul service name of the application, such as name = "order".`,
		normalising(consulName("service")))
	d.str(rl.ID, &ls.ID, "Invalid service ID", serviceID)
	d.str(rl.Address, &ls.Address, "Invalid service address", serviceAddress)

	before := len(d.diags)
	portOK := d.integer(rl.Port, &ls.Port, 1, 65535)
	if !portOK && len(d.diags) == before {
		d.required(rl.Port, "port", rl.DefRange, "A local_service needs the port the application listens on, from 1 to 65535.")
	}

	d.strList(rl.Tags, &ls.Tags, "Invalid tag", serviceTag)
	if d.strMap(rl.Meta, &ls.Meta, "Invalid meta", metaPair) && len(ls.Meta) > maxMetaPairs {
		d.errorf(rl.Meta.Expr.Range(), "Invalid meta", "Consul allows at most %d meta pairs, not %d.", maxMetaPairs, len(ls.Meta))
	}
	d.duration(rl.DeregisterDelay, &ls.DeregisterDelay, nonNegative)

	if nameOK && portOK && ls.ID == "" {
		ls.ID = defaultServiceID(ls.Name, ls.Port)
	}

	rc, extra, more := onlyOne(rl.Check, "check", func(b *rawLocalCheck) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if rc != nil {
		ls.Check = d.localCheck(rc)
	}
	for _, b := range extra {
		d.localCheck(b)
	}
	return ls
}

// defaultServiceID is name-hostname-port, or name-port when the host name is
// unknown.
func defaultServiceID(name string, port int) string {
	if h, err := hostname(); err == nil && h != "" {
		return name + "-" + h + "-" + strconv.Itoa(port)
	}
	return name + "-" + strconv.Itoa(port)
}

func (d *decoder) localCheck(rc *rawLocalCheck) *LocalCheck {
	c := defaultLocalCheck()
	before := len(d.diags)
	httpOK := d.str(rc.HTTP, &c.HTTP, "Invalid HTTP check", checkHTTP)
	tcpOK := d.str(rc.TCP, &c.TCP, "Invalid TCP check", checkTCP)
	targetOK := len(d.diags) == before
	d.duration(rc.Interval, &c.Interval, positive)
	d.duration(rc.Timeout, &c.Timeout, positive)
	d.duration(rc.DeregisterCriticalAfter, &c.DeregisterCriticalAfter, nonNegative)

	switch {
	case httpOK && tcpOK:
		d.errorf(rc.TCP.NameRange, "Conflicting check type",
			"A check has either http (an http:// or https:// URL) or tcp (host:port), not both; http is set at %s.", posString(rc.HTTP.NameRange))
	case !httpOK && !tcpOK && targetOK: // both absent or null
		d.errorf(rc.DefRange, "Missing check target",
			`A check needs exactly one of http (a URL such as "http://127.0.0.1:9002/health") or tcp (such as "127.0.0.1:9002").`)
	}
	return c
}
