// Package route is the routing table: routes matched by host and canonical
// path prefix, the services they forward to with their instances as
// discovery last published them, the balancers that pick an instance per
// attempt, each service's max_requests gate and queue, retry budget and
// outlier feedback, and the long-lived counters behind the metrics. A Table
// is immutable; a Builder makes a new one for every change and keeps the
// long-lived parts (pools, gates, health, counters) across tables.
package route
