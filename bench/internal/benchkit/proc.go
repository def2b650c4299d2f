// Package benchkit holds what ferry's benchmark drivers share: starting and
// stopping the processes they own (by PID only), reading a process tree's
// CPU time and peak memory from /proc, free loopback ports, and a Consul dev
// agent on its own ports.
package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process a driver started. Stop ends it by its PID (and, for the
// process trees nginx builds, by the PIDs of its children).
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
}

// Start runs bin with args and env (added to the driver's environment),
// sending its output to dir/name.log.
func Start(dir, name, bin string, env []string, args ...string) (*Proc, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process (nginx and HAProxy stop their workers on
// it), waits up to 5 s, then sends SIGKILL to it and to any child it left.
func (p *Proc) Stop() {
	if p == nil || p.Exited() {
		return
	}
	children := Tree(p.PID())[1:]
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.Cmd.Process.Kill()
		<-p.done
	}
	for _, c := range children {
		if ppidOf(c) == p.PID() || ppidOf(c) == 1 {
			syscall.Kill(c, syscall.SIGKILL) // a worker we started that outlived its master
		}
	}
}

// Tree returns pid followed by its descendants (nginx's workers).
func Tree(pid int) []int {
	parents := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppidOf(c); pp > 0 {
			parents[pp] = append(parents[pp], c)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, parents[out[i]]...)
	}
	return out
}

// statFields returns the fields of /proc/pid/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	return fieldsAfterComm(b)
}

// fieldsAfterComm splits a /proc/PID/stat line after the command name,
// which is in parentheses and may itself hold spaces and ')'; hence the
// last ')'.
func fieldsAfterComm(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:])) // [0] is the state (field 3)
}

func ppidOf(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 100

// CPU returns the user+system CPU time of pid and its descendants.
func CPU(pid int) time.Duration {
	var ticks int64
	for _, p := range Tree(pid) {
		f := statFields(p)
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
		s, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// statusKiB returns the sum of a /proc/PID/status field (VmHWM, VmRSS) over
// pid and its descendants, in KiB. Pages shared between nginx's master and
// workers are counted once per process, so the sum overstates the tree a
// little.
func statusKiB(pid int, field string) int64 {
	var total int64
	for _, p := range Tree(pid) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, field+":"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				total += n
			}
		}
	}
	return total
}

// PeakRSS returns VmHWM summed over the tree, in KiB.
func PeakRSS(pid int) int64 { return statusKiB(pid, "VmHWM") }

// RSS returns VmRSS summed over the tree, in KiB.
func RSS(pid int) int64 { return statusKiB(pid, "VmRSS") }

// ResetPeakRSS resets VmHWM to the current RSS for the tree (writing 5 to
// clear_refs, Linux ≥ 4.0), so that the next PeakRSS covers one run only.
// It reports whether every reset succeeded.
func ResetPeakRSS(pid int) bool {
	ok := true
	for _, p := range Tree(pid) {
		if err := os.WriteFile("/proc/"+strconv.Itoa(p)+"/clear_refs", []byte("5"), 0); err != nil {
			ok = false
		}
	}
	return ok
}

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// WaitHTTP polls url until it answers want, the process exits or timeout
// passes.
func WaitHTTP(ctx context.Context, url string, want int, timeout time.Duration, p *Proc) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	last := errors.New("no answer")
	for {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited while waiting for %s", p.Name, url)
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", url, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func httpGet(url string) ([]byte, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.Bytes(), err
}
