package discovery

import (
	"errors"

	"github.com/hashicorp/consul/api"
)

// ErrNoLeader is wrapped in the Err of a set held stale because Consul
// answered "no instances" while not knowing a cluster leader (an agent that
// is restarting or cut off from its servers): such an answer is not believed.
var ErrNoLeader = errors.New("empty answer from an agent without a known leader")

// verdict is what a watcher does with a successful answer.
type verdict int

const (
	// accept publishes the answer.
	accept verdict = iota
	// holdSuspect keeps the last set, marks it stale with ErrNoLeader and
	// retries with backoff, as after an error.
	holdSuspect
	// holdTentative keeps the last set unchanged and re-queries with index 0
	// after a short delay; an empty answer then is believed.
	holdTentative
)

func (v verdict) String() string {
	switch v {
	case accept:
		return "accept"
	case holdSuspect:
		return "hold-suspect"
	case holdTentative:
		return "hold-tentative"
	}
	return "verdict(?)"
}

// facts are what decide needs to know about an answer and the watcher's state.
type facts struct {
	Empty       bool // the answer has no passing instance
	LeaderKnown bool // see leaderKnown
	Reset       bool // the answer's index went backwards
	Recovering  bool // the previous query failed or was suspect
	Confirming  bool // this answer re-checks an earlier tentative empty one
	Holding     bool // ... and came within the confirm window of that one
	Settling    bool // within the confirm window of the first answer after an outage or a reset
	LastKnown   bool // a set was believed before (or inherited on a tag change)
	LastEmpty   bool // that set had no instance
}

// decide is the fail-static rule: a non-empty answer is always accepted, and
// so is an empty one from a healthy Consul — the service really has no passing
// instance. But a non-empty set is never replaced by an empty answer that is
// likely an artefact:
//   - from an agent that knows no leader: suspect, whatever the last set (it
//     is not believed even for a first answer, so Ready waits for a real one);
//   - right after an index reset or an outage, while the last set was
//     non-empty: tentative, and held through the confirm window (while
//     restored checks run and forgotten services are registered again);
//     an answer still empty at its end is believed. The same for an empty
//     answer within the confirm window of the first answer after the
//     outage, even when answers in between were not empty (Settling): a
//     restarted server first answers from its restored catalog, where the
//     checks still pass, and only then learns from its agents that the
//     restored checks are critical until they run.
func decide(f facts) verdict {
	switch {
	case !f.Empty:
		return accept
	case !f.LeaderKnown:
		return holdSuspect
	case f.LastKnown && !f.LastEmpty && (f.Holding || (f.Reset || f.Recovering || f.Settling) && !f.Confirming):
		return holdTentative
	default:
		return accept
	}
}

// leaderKnown reports whether an answer's X-Consul-KnownLeader can be trusted
// to say the agent knows a leader. Answers served by Consul's streaming
// backend (blocking and cached health queries on Consul ≥ 1.10 by default)
// always carry KnownLeader=false, so the flag means nothing there; treating
// it as "no leader" would hold an emptied service forever.
func leaderKnown(meta *api.QueryMeta) bool {
	return meta.KnownLeader || meta.QueryBackend == api.QueryBackendStreaming
}
