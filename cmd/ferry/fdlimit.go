package main

import (
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// logFileLimit logs the file-descriptor headroom for maxConnections. Go
// raises the process's soft RLIMIT_NOFILE to its hard limit at start (the os
// package does, since Go 1.19), so the soft limit read here is already the
// most ferry can have. Each proxied client connection may hold an upstream
// connection too, so ferry needs about twice max_connections descriptors,
// plus its listeners, Consul queries and idle upstream pools.
func logFileLimit(logger hclog.Logger, maxConnections int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		logger.Warn("cannot read the file descriptor limit", "error", err)
		return
	}
	need := uint64(2*maxConnections + 256)
	if rl.Cur < need {
		logger.Warn("the file descriptor limit is below what max_connections needs: accept errors will be backed off and counted (ferry_proxy_accept_errors_total); raise the hard limit (ulimit -Hn, LimitNOFILE=, docker --ulimit nofile=) or lower max_connections",
			"limit", rl.Cur, "max_connections", maxConnections, "needs", need)
		return
	}
	logger.Info("file descriptors", "limit", rl.Cur, "max_connections", maxConnections, "needs", need)
}
