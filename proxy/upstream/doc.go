// Package upstream keeps the connections to one instance: dialing with
// keep-alive, a pool of idle connections per instance, and the rule that a
// pooled connection is reused only when it is quiet (SPEC §11). How a
// request is exchanged over a connection is the core's business.
package upstream
