// Package discovery keeps the healthy instances of Consul services current
// through one blocking query per service, and publishes them as immutable
// snapshots.
//
// A Manager runs one goroutine per watched service, looping on
// Health().Service(name, tag, passingOnly=false) as a blocking query whose
// context is cancelled when the service stops being watched. That one query
// returns every registered instance with its checks; ferry filters it
// itself (convert.go), so the same answer gives routing the instances the
// service's health policy allows (InstanceSet.Instances) and the admin API
// every instance with its real Consul status (InstanceSet.All). Each change
// publishes a new map of immutable InstanceSets (copy-on-write) through an
// atomic pointer and signals Changed; readers call Sets without locking.
//
// Passing means every check of the instance and of its node passes: a
// warning, a critical check or maintenance mode (node or service) takes the
// instance out of routing (with health = "warning", a warning does not).
// Its address is the service address, else the node address; its weight is
// Consul's passing weight (at least 1).
//
// Index handling follows Consul's "Blocking Queries" rules: an index that goes
// backwards starts over with index 0; an index of 0 is treated as 1; an answer
// that returns fast (under ~1s) without moving the index waits ~1s before the
// next query; every answer is followed by a 10–30ms jittered floor, which
// bounds a flood of changes without delaying the publication of a change.
// Answers with unchanged instances are not signalled, but their Index and
// LastContact are stored (silently) so that the admin API shows them fresh.
//
// Fail static: on an error the last known set keeps serving, marked Stale with
// Err, and the query is retried with exponential backoff with full jitter
// (250ms doubling to 30s, reset by a good answer); the first failure and the
// recovery are logged at warn and info, retries at debug. An empty answer
// from a healthy Consul is believed, but a non-empty set is never replaced by
// an empty answer that is likely an artefact: one from an agent that knows no
// leader is held as an error (ErrNoLeader), and one that comes right after an
// index reset or an outage is re-checked after ~1s and believed only if the
// re-check is empty too. Consul's streaming backend (used for blocking and
// cached health queries since Consul 1.10) never sets X-Consul-KnownLeader,
// so that flag is only trusted on answers from the blocking-query backend.
package discovery
