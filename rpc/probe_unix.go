//go:build unix

package rpc

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
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
	var (
		buf  [1]byte
		perr error
	)
	peek := func(fd uintptr) bool {
		// The socket does not block (the runtime's network poller set it
		// so): EAGAIN means nothing to read.
		_, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK)
		return true // never wait
	}
	return func() bool {
		for tries := 0; ; tries++ {
			err := rc.Read(peek)
			if err == nil {
				return perr == syscall.EAGAIN || perr == syscall.EWOULDBLOCK
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) || tries >= 3 {
				return false
			}
			// A read deadline left behind by a reading caller whose ctx
			// ended as its reply came in (its interrupt ran late, or its
			// grace was armed): nobody reads the connection now, so the
			// deadline is nobody's. It says nothing about the socket:
			// clear it and look again.
			nc.SetReadDeadline(time.Time{})
		}
	}
}
