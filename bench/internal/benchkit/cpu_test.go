package benchkit

import (
	"os"
	"testing"
)

func TestStatTimes(t *testing.T) {
	// A command name with a space and a ')' in it: the fields are counted
	// from the last ')'.
	line := "4242 (fer ry) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 3071 1523 0 0 20 0 9 0 12345 1234567 890 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	u, s, ok := statTimes([]byte(line))
	if !ok || u != 3071 || s != 1523 {
		t.Errorf("statTimes = %d, %d, %v; want 3071, 1523, true", u, s, ok)
	}
	for _, bad := range []string{"", "4242 (ferry", "4242 (ferry) S 1 2 3", "4242 (ferry) S 1 4242 4242 0 -1 0 0 0 0 0 x 1 0"} {
		if _, _, ok := statTimes([]byte(bad)); ok {
			t.Errorf("statTimes(%q) ok", bad)
		}
	}
}

func TestCPUSplitSelf(t *testing.T) {
	// This process's own times: readable, and summing to what CPU reads
	// (both can move between the two reads, by a tick or so).
	c := CPUSplit(os.Getpid())
	if c.User < 0 || c.Sys < 0 {
		t.Fatalf("CPUSplit = %+v", c)
	}
	if d := CPU(os.Getpid()) - c.Total(); d < 0 || d > 1e9 {
		t.Errorf("CPU - CPUSplit.Total = %v", d)
	}
}

func TestParseLoadAvg(t *testing.T) {
	l, err := parseLoadAvg("0.52 1.37 12.01 3/245 12345\n")
	if err != nil || l != [3]float64{0.52, 1.37, 12.01} {
		t.Errorf("parseLoadAvg = %v, %v", l, err)
	}
	for _, bad := range []string{"", "0.52 1.37", "0.52 x 2.01 3/245 1"} {
		if _, err := parseLoadAvg(bad); err == nil {
			t.Errorf("parseLoadAvg(%q): no error", bad)
		}
	}
}
