package main

import (
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/accesslog"
)

// newLogger builds the root logger; components take Named sub-loggers of it.
func newLogger(c config.Log, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "ferry",
		Level:      hclog.LevelFromString(c.Level),
		JSONFormat: c.Format == "json",
		Output:     w,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	})
}

// openAccessLog opens the access log named by log.access_log. The returned
// close function is always safe to call.
func openAccessLog(c config.Log, stdout, stderr io.Writer) (accesslog.Logger, func(), error) {
	nop := func() {}
	switch c.AccessLog {
	case "off":
		return nil, nop, nil
	case "", "stdout":
		return accesslog.New(stdout, c.Format), nop, nil
	case "stderr":
		return accesslog.New(stderr, c.Format), nop, nil
	}
	f, err := os.OpenFile(c.AccessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nop, fmt.Errorf("access log: %w", err)
	}
	return accesslog.New(f, c.Format), func() { f.Close() }, nil
}
