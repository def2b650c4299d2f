package core

// The attempt policy: one pure function of facts about a failed attempt,
// the same for every front-end and upstream client (SPEC §11). Its rules
// follow net/http's Transport (shouldRetryRequest) and Pingora's two failure
// hooks (fail_to_connect, error_while_proxy):
//
//   - a connect failure: nothing was sent, so any request may go to another
//     instance;
//   - a reused keep-alive connection that the upstream had closed (EOF or
//     reset before a single response byte): a request that is idempotent
//     and whose body can be replayed is sent once more, on a new connection
//     to the same instance, without counting as a retry (http.Transport does
//     the same); anything else could have been executed, and is not;
//   - anything after request bytes were written (reset, EOF, malformed
//     response): another instance, only for an idempotent method whose body
//     can be replayed;
//   - a response timeout is final: the upstream has the request and is slow;
//     sending it again would double the work of a struggling service (and is
//     never mistaken for a stale connection);
//   - never once response bytes (a 1xx included) reached the client, and
//     never when the client has gone.

// attemptFacts describe a failed attempt.
type attemptFacts struct {
	connectFailed   bool // the connection could not be made: nothing was sent
	staleReuse      bool // a reused connection failed (EOF, reset) before any response byte
	timedOut        bool // no response head within response_timeout
	idempotent      bool // RFC 9110 §9.2.2
	replayable      bool // no body, or the whole body is held and can be sent again
	responseStarted bool // response bytes (a 1xx included) reached the client
	clientGone      bool
}

// verdict is what the policy allows after a failed attempt.
type verdict uint8

const (
	giveUp         verdict = iota // answer the client with the failure
	retryFresh                    // same instance, new connection, not counted as a retry
	retryElsewhere                // another instance, counted against retries and the budget
)

// decide is the attempt policy. It is a pure function.
func decide(f attemptFacts) verdict {
	switch {
	case f.clientGone || f.responseStarted || f.timedOut:
		return giveUp
	case f.connectFailed:
		return retryElsewhere
	case !f.idempotent || !f.replayable:
		return giveUp
	case f.staleReuse:
		return retryFresh
	}
	return retryElsewhere
}

// idempotentMethod reports whether method is idempotent (RFC 9110 §9.2.2).
func idempotentMethod(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}
