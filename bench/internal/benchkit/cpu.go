package benchkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTimes is a process tree's CPU time, user and system apart: a proxy's
// user time is its own code, its system time mostly the socket calls it
// makes, and a change to one says something different from a change to the
// other.
type CPUTimes struct {
	User, Sys time.Duration
}

// Total is user plus system time, what CPU returns.
func (c CPUTimes) Total() time.Duration { return c.User + c.Sys }

// Sub returns c - d, field by field.
func (c CPUTimes) Sub(d CPUTimes) CPUTimes {
	return CPUTimes{User: c.User - d.User, Sys: c.Sys - d.Sys}
}

// CPUSplit returns the user and system CPU time of pid and its
// descendants, read as CPU reads them. Both are in clock ticks (10 ms), so
// a run should last long enough that a tick is small beside it.
func CPUSplit(pid int) CPUTimes {
	var c CPUTimes
	for _, p := range Tree(pid) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			continue // exited since Tree listed it
		}
		u, s, ok := statTimes(b)
		if !ok {
			continue
		}
		c.User += time.Duration(u) * time.Second / clockTick
		c.Sys += time.Duration(s) * time.Second / clockTick
	}
	return c
}

// statTimes returns utime and stime (fields 14 and 15, in clock ticks) of
// a /proc/PID/stat line.
func statTimes(stat []byte) (utime, stime int64, ok bool) {
	f := fieldsAfterComm(stat)
	if len(f) < 13 {
		return 0, 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return u, s, true
}

// LoadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg
// (zeros if it cannot be read): how busy the shared machine was, printed
// beside figures that depend on it.
func LoadAvg() [3]float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return [3]float64{}
	}
	l, _ := parseLoadAvg(string(b))
	return l
}

// parseLoadAvg reads "0.52 1.37 2.01 3/245 12345".
func parseLoadAvg(s string) ([3]float64, error) {
	var l [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return l, fmt.Errorf("loadavg: %q", s)
	}
	for i := range l {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return [3]float64{}, fmt.Errorf("loadavg: %q: %w", s, err)
		}
		l[i] = v
	}
	return l, nil
}
