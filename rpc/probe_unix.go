//go:build unix

package rpc

import (
	"net"
	"syscall"
)

// newProbe returns a function that reports whether nc's socket has nothing
// to read, without reading it: a peek that does not wait. It finds a
// shutdown notice, a close or a reset that came while nobody read. nil
// when nc is not a socket of its own (TLS, pipes, wrapped connections:
// what they read cannot be peeked at below them).
func newProbe(nc net.Conn) func() bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var buf [1]byte
	return func() bool {
		var perr error
		// Through Control, not Read: RawConn.Read first fails on a read
		// deadline that has passed, and one may be left on an idle
		// connection (the interrupt of a caller who read before, run late;
		// see readOwn). That says nothing about what the server sent: taken
		// for it, a healthy connection was given up and left open, with a
		// reader waiting for a message that never comes. Nobody reads an
		// idle connection, so the read lock Read would take is not needed.
		err := rc.Control(func(fd uintptr) {
			for {
				// The socket does not block (the runtime's network poller
				// set it so): EAGAIN means nothing to read.
				_, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK)
				if perr != syscall.EINTR {
					return
				}
			}
		})
		if err != nil {
			return false
		}
		return perr == syscall.EAGAIN || perr == syscall.EWOULDBLOCK
	}
}
