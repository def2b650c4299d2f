// Package core is ferry's forwarding core (SPEC §11), written once for every
// front-end: the routing decision for a parsed request (Plan), the attempt
// loop under one attempt policy (policy.go), ferry's HTTP/1.1 upstream
// client over the upstream package's pools (client.go), and the response
// relay (relay.go). A front-end owns the client connection, parses the
// request, and plugs in through Downstream: how the request body is read,
// whether the client is still there, and how the response or ferry's own
// answer is written. The Forwarder holds what every front-end shares: the
// routing table in use, the edge policy, the access log and the counters.
package core
