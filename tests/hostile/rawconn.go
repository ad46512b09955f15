//go:build linux

package hostile

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// rawConn is an attacker's TCP connection, made with system calls and no
// Go runtime machinery: the attacker shares the server's process, and a
// net.Conn would add goroutines, poll descriptors and allocations that the
// measurements would blame on the server. Reads and writes block (each
// bounded by the socket's timeouts); an attacker that must read while it
// writes uses a goroutine of its own, counted as the attacker's.
type rawConn struct {
	fd int
}

// errTimeout is a read or write that passed its socket timeout.
var errTimeout = errors.New("hostile: socket timeout")

// dialRaw connects to addr (an IPv4 loopback address); connect, each
// write and each read wait at most timeout.
func dialRaw(addr *net.TCPAddr, timeout time.Duration) (*rawConn, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	tv := syscall.NsecToTimeval(int64(timeout))
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	sa := &syscall.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	for {
		err = syscall.Connect(fd, sa)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	return &rawConn{fd: fd}, nil
}

// write writes all of p, or fails; a peer that hung up is an error
// (EPIPE, ECONNRESET), never a signal.
func (c *rawConn) write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, _, e := syscall.Syscall6(syscall.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(&p[done])),
			uintptr(len(p)-done), syscall.MSG_NOSIGNAL, 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return done, errTimeout
		case e != 0:
			return done, os.NewSyscallError("send", e)
		}
		done += int(n)
	}
	return done, nil
}

// Read reads what has arrived, waiting at most the socket's timeout.
func (c *rawConn) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(c.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errTimeout
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(p) > 0:
			return 0, errEOF
		}
		return n, nil
	}
}

var errEOF = fmt.Errorf("hostile: the server closed the connection")

// peerState is what a look at a connection finds.
type peerState int

const (
	peerOpen     peerState = iota // nothing to read, not closed
	peerAnswered                  // bytes are waiting to be read
	peerClosed                    // the server closed or reset the connection
)

// look tells, without waiting and without reading, whether the server has
// closed the connection or sent something.
func (c *rawConn) look() peerState {
	var b [1]byte
	for {
		n, _, err := syscall.Recvfrom(c.fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return peerOpen
		case err != nil:
			return peerClosed
		case n == 0:
			return peerClosed
		}
		return peerAnswered
	}
}

// closeReset closes the connection at once with a reset, leaving no
// TIME_WAIT behind (bursts of connections would run out of ports).
func (c *rawConn) closeReset() {
	syscall.SetsockoptLinger(c.fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
	c.close()
}

func (c *rawConn) close() {
	if c.fd >= 0 {
		syscall.Close(c.fd)
		c.fd = -1
	}
}

// conns is a group of attacker connections.
type conns []*rawConn

func (cs conns) close() {
	for _, c := range cs {
		c.close()
	}
}

// shutdown shuts the connections down, which wakes a goroutine blocked
// reading one (closing a descriptor would not).
func (cs conns) shutdown() {
	for _, c := range cs {
		if c.fd >= 0 {
			syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
		}
	}
}

// count tells how many of the connections the server has closed, and how
// many it answered (sent bytes on).
func (cs conns) count() (closed, answered int) {
	for _, c := range cs {
		switch c.look() {
		case peerClosed:
			closed++
		case peerAnswered:
			if c.ended() {
				closed++ // the server closed or reset it behind replies not read
				continue
			}
			answered++
		}
	}
	return closed, answered
}

// ended reports whether the server has closed or reset the connection,
// whatever still waits in its receive buffer: the kernel's TCP state says
// so (tcp_info's first byte: TCP_CLOSE 7 after a reset, TCP_CLOSE_WAIT 8
// after the server's FIN).
func (c *rawConn) ended() bool {
	var info [8]byte
	n := uint32(len(info))
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(c.fd), syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&n)), 0)
	return errno == 0 && n > 0 && (info[0] == 7 || info[0] == 8)
}

// drain reads, without waiting, whatever the server has sent, and tells
// how many bytes that was and whether the server has closed the
// connection since.
func (c *rawConn) drain(scratch []byte) (int, peerState) {
	total := 0
	for {
		n, _, err := syscall.Recvfrom(c.fd, scratch, syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return total, peerOpen
		case err != nil, n == 0:
			return total, peerClosed
		}
		total += n
	}
}
