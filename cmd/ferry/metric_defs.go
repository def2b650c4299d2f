package main

// Every metric ferry exports. The README's "Metrics" section documents each
// (a test checks it).
var (
	mRequests = def("proxy", "requests_total", "counter", "route, service, code_class",
		"Requests answered on a route, by status class (1xx-5xx; 499, the client went away, is 4xx).")
	mUnrouted = def("proxy", "unrouted_requests_total", "counter", "reason",
		"Requests answered without a route: reason no_route (404), bad_request (400, a path that cannot be made canonical) or method_not_allowed (405, CONNECT).")
	mHandoffs = def("proxy", "handoffs_total", "counter", "",
		"Client connections the fast lane handed to the net/http lane (an error to answer, an upgrade, a chunked upload, HTTP/1.0, an unusual head); that lane serves the connection to its end.")
	mDuration = def("proxy", "request_duration_seconds", "histogram", "route, service",
		"Time from the request's arrival to the end of its response (buckets: see the README).")
	mAttemptDuration = def("proxy", "upstream_attempt_duration_seconds", "histogram", "service",
		"Time from sending a request to an instance to its response head, or to the attempt's failure (buckets: see the README).")
	mBytes = def("proxy", "response_bytes_total", "counter", "route, service",
		"Response body bytes sent to clients on the route.")
	mInFlight = def("proxy", "requests_in_flight", "gauge", "service",
		"Requests of the service being forwarded now.")
	mAttempts = def("proxy", "upstream_attempts_total", "counter", "service",
		"Attempts sent to the service's instances, first tries and retries.")
	mRetries = def("proxy", "retries_total", "counter", "service",
		"Attempts that were retries on another instance.")
	mRetriesDenied = def("proxy", "retries_denied_total", "counter", "service",
		"Retries the service's retry budget refused (retries in flight are capped at 20% of requests in flight, at least 3): the client got the failed attempt's error.")
	mQueued = def("proxy", "requests_queued", "gauge", "service",
		"Requests of the service waiting for a max_requests slot now.")
	mQueuedTotal = def("proxy", "queued_requests_total", "counter", "service",
		"Requests that waited for a max_requests slot.")
	mQueueWait = def("proxy", "queue_wait_seconds_total", "counter", "service",
		"Total time requests waited for a max_requests slot.")
	mQueueTimeouts = def("proxy", "queue_timeouts_total", "counter", "service",
		"Queued requests answered 503 after queue_timeout.")
	mQueueOverflows = def("proxy", "queue_overflows_total", "counter", "service",
		"Requests answered 503 at once: max_requests reached and the queue full.")
	mParked = def("proxy", "parked_connections", "gauge", "",
		"Idle keep-alive client connections parked now: held with no goroutine and no buffer until the client sends again.")
	mListenerConns = def("listener", "connections", "gauge", "listener",
		"Client connections open on the listener now (\"listen\" for the listen shorthand): HTTP/1.1, HTTP/2 and h2c alike, TLS handshakes, parked and upgraded connections included. limits.max_connections caps it; at the cap, new connections wait in the listen backlog.")
	mAcceptErrors = def("proxy", "accept_errors_total", "counter", "",
		"Failed accepts (out of file descriptors) that were backed off.")
	mInstances = def("upstream", "instances", "gauge", "service",
		"Instances ferry routes the service to: those Consul's view and the service's health policy make routable.")
	mRegistered = def("upstream", "registered_instances", "gauge", "service",
		"Instances registered in Consul for the service (with its tag), routable or not; less ferry_upstream_instances, those Consul's checks keep out of routing.")
	mHealthy = def("upstream", "healthy_instances", "gauge", "service",
		"Instances that may get new requests: passing in Consul, passing ferry's active checks (if any), not ejected and not drained.")
	mEjected = def("upstream", "ejected_instances", "gauge", "service",
		"Instances ejected by passive (outlier) checks right now.")
	mDrained = def("upstream", "drained_instances", "gauge", "service",
		"Instances an operator drained through the admin API (POST /v1/upstreams/{service}/{instance}/drain).")
	mCheckFailing = def("upstream", "check_failing_instances", "gauge", "service",
		"Instances whose active checks (health_check, or the TCP probe while Consul is unreachable) fail right now.")
	mEjections = def("health", "ejections_total", "counter", "service",
		"Outlier ejections of the service's instances.")
	mCheckFailures = def("health", "check_failures_total", "counter", "service",
		"Failed active probes of the service's instances (every failure, not only those that cross unhealthy_threshold).")
	mDiscoveryUpdates = def("discovery", "updates_total", "counter", "service",
		"Consul answers that changed the service's passing instances (the first answer included).")
	mDiscoveryErrors = def("discovery", "errors_total", "counter", "service",
		"Failed Consul queries for the service, and empty answers held as suspect (no leader).")
	mLastContact = def("discovery", "last_contact_seconds", "gauge", "service",
		"Seconds since Consul last answered for the service. A blocking query answers at least every consul.wait_time, so values up to it are normal.")
	mStale = def("discovery", "stale", "gauge", "service",
		"1 while the service's queries fail and ferry serves its last known instances (or has none yet), else 0.")
	mPanic = def("upstream", "panic", "gauge", "service",
		"1 while the service is in panic mode (fewer than panic_threshold percent of its instances pass ferry's own checks, so all of them get traffic), else 0.")
	mPanics = def("upstream", "panics_total", "counter", "service",
		"Times the service entered panic mode.")
	mFailover = def("discovery", "failover", "gauge", "service, datacenter",
		"1 while the service's instances come from a failover datacenter (datacenter names it), because the local one has none routable.")
	mReloads = def("config", "reloads_total", "counter", "",
		"Configuration reloads that were applied (SIGHUP or a changed file).")
	mReloadFailures = def("config", "reload_failures_total", "counter", "",
		"Configuration reloads that were rejected; the running configuration was kept.")
	mCacheRequests = def("cache", "requests_total", "counter", "route, result",
		"Requests a route's cache looked at, by result: hit (fresh, or a 304 to a conditional request), miss, stale (stale-while-revalidate, stale-if-error), revalidated (a 304 made the stored response fresh), bypass (not cacheable), collapsed (waited for another request's fetch).")
	mCacheStored = def("cache", "stored_total", "counter", "route",
		"Responses a route's cache stored.")
	mCacheEvictions = def("cache", "evictions_total", "counter", "route",
		"Objects evicted from a route's memory tier to make room (max_bytes).")
	mCacheBytes = def("cache", "bytes", "gauge", "route",
		"Bytes held in a route's memory tier.")
	mCacheRedisErrors = def("cache", "redis_errors_total", "counter", "route",
		"Failed Redis commands of a route's cache (the request went on without the Redis tier).")
	mCertExpiry = def("tls", "certificate_expiry_seconds", "gauge", "listener, cert_file",
		"Seconds until a served certificate expires (negative: expired), per TLS listener and certificate file.")
	mCertReloadFailures = def("tls", "certificate_reload_failures_total", "counter", "listener",
		"Certificate reloads that found a missing or broken file; the listener kept serving the previous certificate.")
	mJWTCacheLookups = def("filter", "jwt_cache_lookups_total", "counter", "route, result",
		"Bearer tokens the jwt filter looked up in its cache of verified tokens: hit (answered without checking the signature again) or miss (not cached, expired or of a replaced key set: verified, then cached if it passed). Absent for a route with cache_size = 0.")
	mFilterRejections = def("filter", "rejections_total", "counter", "route, filter, reason",
		"Requests a route filter answered instead of forwarding (jwt: missing, invalid, expired, forbidden…; rate_limit: limited), and rate-limit decisions taken locally because Redis failed (reason store_error).")
)

// allMetrics lists the definitions, for help texts and the README test.
var allMetrics = []metricDef{
	mRequests, mUnrouted, mHandoffs, mDuration, mAttemptDuration, mBytes, mInFlight, mAttempts, mRetries, mRetriesDenied,
	mQueued, mQueuedTotal, mQueueWait, mQueueTimeouts, mQueueOverflows, mAcceptErrors, mParked, mListenerConns,
	mInstances, mRegistered, mHealthy, mEjected, mDrained, mCheckFailing,
	mEjections, mCheckFailures,
	mDiscoveryUpdates, mDiscoveryErrors, mLastContact, mStale,
	mReloads, mReloadFailures,
	mPanic, mPanics, mFailover,
	mCertExpiry, mCertReloadFailures,
	mFilterRejections, mJWTCacheLookups, mCacheRequests, mCacheStored, mCacheEvictions, mCacheBytes, mCacheRedisErrors,
}
