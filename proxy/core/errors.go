package core

import (
	"strconv"
)

// StatusClientClosed is logged (never sent) when the client went away before
// the upstream answered, as nginx does.
const StatusClientClosed = 499

func quote(s string) string { return strconv.Quote(s) }
