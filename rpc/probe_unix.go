//go:build unix

package rpc

import (
	"net"
	"syscall"
)

// newProbe returns a function that reports what nc's socket holds, without
// reading it: a peek that does not wait. It finds a shutdown notice (data),
// a close or a reset (ended) that came while nobody read. nil when nc is
// not a socket of its own (TLS, pipes, wrapped connections: what they read
// cannot be peeked at below them).
func newProbe(nc net.Conn) func() probeResult {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var buf [1]byte
	return func() probeResult {
		var n int
		var perr error
		// Through Control, not Read: RawConn.Read would take the read lock,
		// which a reader goroutine blocked in a read holds (register looks
		// at a connection such a goroutine reads while no call is
		// pending), and a peek changes nothing a reader would see.
		err := rc.Control(func(fd uintptr) {
			for {
				// The socket does not block (the runtime's network poller
				// set it so): EAGAIN means nothing to read.
				n, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK)
				if perr != syscall.EINTR {
					return
				}
			}
		})
		switch {
		case err != nil:
			return probeEnded
		case perr == syscall.EAGAIN || perr == syscall.EWOULDBLOCK:
			return probeEmpty
		case perr == nil && n > 0:
			return probeData
		}
		return probeEnded // 0 bytes: the peer closed; or an error, a reset say
	}
}
