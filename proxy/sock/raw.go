package sock

import (
	"syscall"
	"unsafe"
)

// System calls on a non-blocking socket's descriptor, straight: without
// the scheduler's entersyscall/exitsyscall around them (about 60 ns each
// here), since on a non-blocking descriptor they never block, which is
// what RawSyscall is for; and without the address recvfrom would fill in.
// The peek, the write-then-wait step and the TLS drain use them.

// RecvNoWait is recv(fd, p, flags|MSG_DONTWAIT), retried once after EINTR.
// A quiet socket gives syscall.EAGAIN; a closed one 0 bytes and no error.
func RecvNoWait(fd int, p []byte, flags int) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for try := 0; ; try++ {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			uintptr(flags|syscall.MSG_DONTWAIT), 0, 0)
		switch {
		case e == 0:
			return int(n), nil
		case e == syscall.EINTR && try == 0:
			continue
		}
		return 0, e
	}
}

// rawRead is read(2) on a non-blocking socket.
func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// rawWrite is write(2) on a non-blocking socket.
func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
