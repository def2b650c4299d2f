package proxy

import (
	"errors"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

// Parking idle keep-alive connections.
//
// A goroutine blocked in Read keeps its stack (4 KiB once the collector has
// shrunk it, more before), and a fastConn keeps its 8 KiB read buffer and
// its parsed head: about 17 KiB per idle client connection, where nginx
// keeps about 2 KiB. So a fast-lane connection that stays quiet for
// parkAfter is parked: its descriptor is registered in an epoll instance
// the Server owns (level-triggered, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT),
// its goroutine goes back to the workers and its fastConn (buffer, head) to
// the pool, and only a parkedConn is kept, in a map by descriptor. One
// goroutine, the poller, waits in epoll_wait; when a parked connection
// becomes readable (a request, or the client's FIN or reset) it takes the
// record out, gives the connection a fastConn again and hands it to a
// worker, whose Read returns the bytes at once (Go's descriptors are
// non-blocking; the connection stays registered in Go's own poller too,
// untouched).
//
// Nothing is lost at the edge. A connection is parked only after its read
// deadline (the grace) passed with nothing read, so a busy connection —
// its next request already buffered, or arriving while it waits — never
// pays for parking. Bytes that arrive after that read gave up and before
// the registration are not missed: the registration is level-triggered, and
// adding (or re-arming) it makes the kernel check the socket's state at
// once and report it if it is readable. ONESHOT makes the report come once:
// after it the registration is disabled, not removed, until the connection
// parks again (EPOLL_CTL_MOD re-arms it) or is closed (closing the
// descriptor removes it).
//
// The map, the registration and the hand-over to a worker all happen under
// Server.mu, so Shutdown's count of connections (active plus parked) never
// misses one in between; the poller is the only goroutine that closes a
// parked connection (idle timeout, Shutdown, Close), so a descriptor in the
// map is always open and its own.
//
// Only connections whose bytes are all in the kernel are parked: plain TCP
// (and Unix) sockets. A *tls.Conn may hold decrypted bytes the kernel
// cannot report, so it keeps a goroutine blocked in Read, as does every
// connection of the net/http lane (hand-offs, fast_lane = false).

// defaultParkAfter is how long a fast-lane connection waits for its next
// request with its goroutine and buffer before it is parked. Much longer
// than a busy connection's pause between requests, short enough that a
// connection used now and then is parked most of the time.
const defaultParkAfter = 250 * time.Millisecond

// parkSweepEvery is how often the poller closes parked connections whose
// idle timeout passed: the timeout may fire this much late, as client
// deadlines may anyway (sock.ClientDeadlineSlack).
const parkSweepEvery = time.Second

// parkedConn is what a parked connection keeps: its guarded connection, the
// peer's address as text (so that waking allocates nothing) and when its
// idle timeout ends (Unix nanoseconds; 0: never).
type parkedConn struct {
	gc        *guardConn
	remote    string
	idleUntil int64
}

// parker is the Server's epoll instance and its parked connections. conns
// is guarded by Server.mu; epfd and the pipe are closed by the poller when
// it ends.
type parker struct {
	epfd         int
	wakeR, wakeW int // stop writes to wakeW; the poller sees wakeR readable
	conns        map[int32]parkedConn
	broken       bool // epoll_wait failed: park no more

	// For trimming (see trimAfter): the most connections in service
	// (s.conns) seen since the last trim, and when that was.
	peakActive int
	lastTrim   time.Time
}

func newParker() (*parker, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(pipe[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(pipe[0])
		syscall.Close(pipe[1])
		return nil, err
	}
	return &parker{epfd: epfd, wakeR: pipe[0], wakeW: pipe[1], conns: make(map[int32]parkedConn)}, nil
}

// parkable reports whether c's connection may be parked: the server parks,
// its bytes are all in the kernel, and its idle timeout is longer than the
// grace before parking.
func (s *Server) parkable(c *fastConn) bool {
	if s.parker == nil || c.Fd < 0 {
		return false
	}
	switch c.raw.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return false // e.g. TLS: bytes may wait in its buffer, unseen by epoll
	}
	return s.idleTimeout <= 0 || s.idleTimeout > s.parkAfter
}

// park parks c, which has been quiet for parkAfter with nothing buffered.
// It reports false when it did not: the server is stopping, c was closed by
// Shutdown, or the registration failed; the caller then goes on as a
// connection that is not parked. After true, c's connection is no longer
// the caller's: it may already be served again by another worker.
func (s *Server) park(c *fastConn) bool {
	p := s.parker
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done.Load() || p.broken || c.state.Load() == connClosed {
		return false
	}
	fd := int32(c.Fd)
	var idleUntil int64
	if s.idleTimeout > 0 {
		// Idle since about parkAfter ago.
		idleUntil = time.Now().Add(s.idleTimeout - s.parkAfter).UnixNano()
	}
	// In the map before the registration: the poller may see the event as
	// soon as it exists (it waits for Server.mu to handle it).
	p.conns[fd] = parkedConn{gc: c.gc, remote: c.remote, idleUntil: idleUntil}
	p.peakActive = max(p.peakActive, len(s.conns))
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: fd}
	err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev) // parked before: re-arm
	if err == syscall.ENOENT {
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}
	if err != nil {
		delete(p.conns, fd)
		return false
	}
	delete(s.conns, c)
	s.h.Stats().Parked(1)
	return true
}

// pollParked is the poller: it hands parked connections that became
// readable to workers, closes those whose idle timeout passed, and, once
// the server stops, closes every parked connection and the epoll instance.
// Serve starts it; stop ends it.
func (s *Server) pollParked() {
	defer s.wg.Done()
	p := s.parker
	events := make([]syscall.EpollEvent, 128)
	nextSweep := time.Now().Add(parkSweepEvery)
	for {
		// Awake once a sweep period even with nothing parked: a connection
		// parked meanwhile does not wake the poller.
		timeout := int(max(time.Until(nextSweep), 0)/time.Millisecond) + 1
		n, err := syscall.EpollWait(p.epfd, events, timeout)
		if err == syscall.EINTR {
			continue
		}
		var closing []*guardConn
		s.mu.Lock()
		if err != nil || s.done.Load() {
			// Stopping (or the epoll instance failed, which should not
			// happen: then park no more, and close the parked as if
			// their idle timeout had passed).
			p.broken = true
			closing = p.takeLocked(func(parkedConn) bool { return true })
			s.h.Stats().Parked(-len(closing))
			syscall.Close(p.epfd)
			syscall.Close(p.wakeR)
			syscall.Close(p.wakeW)
			p.epfd, p.wakeR, p.wakeW = -1, -1, -1
			s.mu.Unlock()
			closeAll(closing)
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd != int32(p.wakeR) {
				s.wakeLocked(ev.Fd)
			}
		}
		trim := false
		if now := time.Now(); !now.Before(nextSweep) {
			nextSweep = now.Add(parkSweepEvery)
			t := now.UnixNano()
			closing = p.takeLocked(func(pc parkedConn) bool { return pc.idleUntil != 0 && t >= pc.idleUntil })
			s.h.Stats().Parked(-len(closing))
			trim = p.shouldTrimLocked(len(s.conns), now)
		}
		s.mu.Unlock()
		closeAll(closing) // outside the lock: a close is a system call
		if trim {
			// Two collections: the first moves the pool's fastConns to
			// its victim cache, the second frees them; then the freed
			// pages go back to the OS.
			runtime.GC()
			debug.FreeOSMemory()
		}
	}
}

// Trimming. The fastConns of connections that parked go back to a
// sync.Pool, and their memory stays in the process until two collections
// have run and the runtime's scavenger has returned the pages: with
// ferry's fast lane allocating next to nothing per request, that can take
// minutes (the runtime forces a collection every two), during which a
// burst of thousands of connections keeps ~12 KiB of RSS each after they
// went idle. So when the connections in service have fallen well below
// their peak, by at least trimAfter (~1.5 MiB of fastConns), the poller
// collects and returns the free memory at once — at most every trimEvery,
// so that a server breathing in and out pays for it rarely.
const (
	trimAfter = 128
	trimEvery = 10 * time.Second
)

// shouldTrimLocked reports whether to trim now, and if so starts a new
// peak. s.mu is held.
func (p *parker) shouldTrimLocked(active int, now time.Time) bool {
	p.peakActive = max(p.peakActive, active)
	if p.peakActive-active < trimAfter || active > p.peakActive/2 || now.Sub(p.lastTrim) < trimEvery {
		return false
	}
	p.peakActive, p.lastTrim = active, now
	return true
}

// wakeLocked gives the parked connection on fd a fastConn and a worker.
// Readable may mean a request, or the client's FIN or reset: the worker's
// read tells which. s.mu is held.
func (s *Server) wakeLocked(fd int32) {
	p := s.parker
	pc, ok := p.conns[fd]
	if !ok {
		return // cannot happen: only the poller removes parked connections
	}
	delete(p.conns, fd)
	s.h.Stats().Parked(-1)
	c := fastConns.Get().(*fastConn)
	c.s, c.gc, c.raw = s, pc.gc, pc.gc.Conn
	c.Fd = int(fd)
	c.remote = pc.remote
	if host, _, err := net.SplitHostPort(c.remote); err == nil {
		c.clientIP = host
	}
	c.parkable = true
	s.conns[c] = struct{}{}
	select {
	case s.idleWorkers <- c:
	default:
		s.wg.Add(1)
		go s.work(c)
	}
}

// takeLocked removes and returns the parked connections that match.
// s.mu is held.
func (p *parker) takeLocked(match func(parkedConn) bool) []*guardConn {
	var out []*guardConn
	for fd, pc := range p.conns {
		if match(pc) {
			out = append(out, pc.gc)
			delete(p.conns, fd)
		}
	}
	return out
}

// parkedLocked is how many connections are parked. s.mu is held.
func (s *Server) parkedLocked() int {
	if s.parker == nil {
		return 0
	}
	return len(s.parker.conns)
}

// wakePoller makes the poller look at the server's state (stop calls it,
// with s.mu held).
func (p *parker) wakePoller() {
	if p.wakeW >= 0 { // not closed by a poller that ended early
		syscall.Write(p.wakeW, []byte{0})
	}
}

// isTimeout reports whether a read failed because its deadline passed.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func closeAll(conns []*guardConn) {
	for _, gc := range conns {
		gc.Close()
	}
}
