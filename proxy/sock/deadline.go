package sock

import (
	"net"
	"time"
)

// Deadlines on the fast lane's connections are runtime timers, and updating
// one on every request was a measurable part of the request's CPU. The fast
// lane records the deadline it armed on each direction of a connection and
// re-arms it only when the one it wants is off by more than a slack: a
// client's idle, header-body and write timeouts (tens of seconds) may then
// fire up to a second early or late. A response wait is armed within an
// eighth of its slice (at most 500 ms) and re-checks its exact deadline
// whenever it fires (see exchangeHead), so response_timeout is never early
// and at most an eighth of itself (or 62 ms) late.

// SetReadLazy makes c's read deadline want, give or take slack.
func SetReadLazy(c net.Conn, armed *time.Time, want time.Time, slack time.Duration) {
	if near(*armed, want, slack) {
		return
	}
	*armed = want
	c.SetReadDeadline(want)
}

// SetWriteLazy makes c's write deadline want, give or take slack.
func SetWriteLazy(c net.Conn, armed *time.Time, want time.Time, slack time.Duration) {
	if near(*armed, want, slack) {
		return
	}
	*armed = want
	c.SetWriteDeadline(want)
}

// SetRead makes c's read deadline exactly t (zero: none).
func SetRead(c net.Conn, armed *time.Time, t time.Time) {
	*armed = t
	c.SetReadDeadline(t)
}

// SetWrite makes c's write deadline exactly t (zero: none).
func SetWrite(c net.Conn, armed *time.Time, t time.Time) {
	*armed = t
	c.SetWriteDeadline(t)
}

func near(armed, want time.Time, slack time.Duration) bool {
	if armed.IsZero() {
		return false
	}
	d := armed.Sub(want)
	return -slack <= d && d <= slack
}

// ClientDeadlineSlack is how far a client connection's idle, header, body
// and write deadlines may be from exact.
const ClientDeadlineSlack = time.Second
