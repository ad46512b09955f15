package rpc

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/semrpc/semrpc/internal/gobcheck"
)

// A server is safe to expose with its defaults: every read, write and
// handshake has a deadline, and connections have a cap. The defaults follow
// net/http's advice for servers that face the Internet (its Server has the
// same four timeouts, all off by default, which its documentation warns
// against) with the values grpc-go and common proxies use, chosen so that
// no well-behaved client meets them.
const (
	// DefaultReadTimeout bounds the reading of one message once its first
	// byte has arrived: a 4 MiB message needs about 1 Mbit/s to arrive in
	// time. A peer that stalls in the middle of a message is cut off then.
	DefaultReadTimeout = 30 * time.Second

	// DefaultWriteTimeout bounds each write of replies to a connection: a
	// peer that stops reading is cut off then, and the requests and replies
	// it pinned are freed.
	DefaultWriteTimeout = 30 * time.Second

	// DefaultIdleTimeout is how long a connection may stay idle (nothing
	// arriving, no call running, no reply being written) before the server
	// sends it the shutdown notice and closes it (between one and two idle
	// timeouts after its last byte: the deadline is set once per timeout,
	// not per message). A semrpc client reads the
	// notice, sends nothing more there and makes a new connection for its
	// next call; nothing is lost.
	DefaultIdleTimeout = 5 * time.Minute

	// DefaultHandshakeTimeout bounds a TLS handshake, as net/http's
	// client bounds its own (TLSHandshakeTimeout).
	DefaultHandshakeTimeout = 10 * time.Second

	// DefaultMaxConnections caps the connections Serve serves at once.
	// Beyond it a new connection is refused: its requests are answered
	// ErrShuttingDown (not run; a retrying client tries again later) and it
	// is closed, while the connections already served keep working. An idle
	// connection holds a few KiB, so the cap bounds what idle peers can pin
	// to tens of MiB; Go raises a process's descriptor limit to its hard
	// limit at start, which is usually far above it.
	DefaultMaxConnections = 4096

	// DefaultMaxConcurrentPerConn bounds the calls one connection runs at
	// once (WithMaxConcurrentPerConn); beyond it the server reads no more
	// of that connection until one finishes. A peer that sends requests
	// and reads no replies pins at most this many replies, for at most the
	// write timeout. grpc-go's servers are commonly set to 100 streams per
	// connection, as HTTP/2 suggests.
	DefaultMaxConcurrentPerConn = 128
)

// WithReadTimeout bounds the time a server waits for the rest of a message
// once its first byte has arrived (default DefaultReadTimeout); a connection
// whose message is late is closed. A negative d turns the bound off.
// Server only.
func WithReadTimeout(d time.Duration) Option {
	return func(o *options) {
		if d != 0 {
			o.readTimeout = d
		}
	}
}

// WithWriteTimeout bounds each write a server makes to a connection
// (default DefaultWriteTimeout); a connection whose peer does not read in
// time is closed. A negative d turns the bound off. Server only.
func WithWriteTimeout(d time.Duration) Option {
	return func(o *options) {
		if d != 0 {
			o.writeTimeout = d
		}
	}
}

// WithIdleTimeout sets how long a server keeps a connection that has
// nothing pending (default DefaultIdleTimeout). It then sends the
// connection the shutdown notice, answers requests that still arrive
// ErrShuttingDown (not run) for a short grace, and closes it. A negative d
// keeps idle connections for ever. Server only.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) {
		if d != 0 {
			o.idleTimeout = d
		}
	}
}

// WithHandshakeTimeout bounds the TLS handshake of a connection accepted
// by Serve on a TLS listener (default DefaultHandshakeTimeout). A negative
// d turns the bound off. Server only.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d != 0 {
			o.handshakeTimeout = d
		}
	}
}

// WithMaxConnections caps the connections a server serves at once, counted
// over all its listeners and ServeConn (default DefaultMaxConnections). A
// connection that Serve accepts beyond the cap is refused: requests it
// sends within a short grace are answered ErrShuttingDown (not run), then
// it is closed. ServeConn and ServeHTTP refuse theirs at once. A negative
// n removes the cap. Server only.
func WithMaxConnections(n int) Option {
	return func(o *options) {
		if n != 0 {
			o.maxConns = n
		}
	}
}

// timeout returns d, or 0 (none) for a negative d.
func timeout(d time.Duration) time.Duration { return max(d, 0) }

// newMsgReader returns the reader of a connection's requests, bounded by
// the server's limits.
func (s *Server) newMsgReader(r io.Reader) *msgReader {
	m := newMsgReader(r, s.opts.maxMsg, gobcheck.NewStream(gobcheck.Limits{}))
	m.msgTimeout = timeout(s.opts.readTimeout)
	m.idleTimeout = timeout(s.opts.idleTimeout)
	return m
}

// deadlineWriter returns w, each of whose writes is bounded by the
// server's write timeout when w can have deadlines.
func (s *Server) deadlineWriter(w io.Writer) io.Writer {
	d := timeout(s.opts.writeTimeout)
	wd, ok := w.(writeDeadliner)
	if d == 0 || !ok {
		return w
	}
	return &timedWriter{w: w, wd: wd, d: d}
}

type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// timedWriter bounds each write by d. Moving a deadline costs little, but
// not nothing: it is moved only when less than 3/4 of d is left, so every
// write has between 3/4 of d and d to finish.
type timedWriter struct {
	w    io.Writer
	wd   writeDeadliner
	d    time.Duration
	dead time.Time // the deadline set; touched by the writing goroutine only
}

func (t *timedWriter) Write(p []byte) (int, error) {
	now := time.Now()
	if t.dead.Sub(now) < t.d*3/4 {
		t.dead = now.Add(t.d)
		t.wd.SetWriteDeadline(t.dead)
	}
	return t.w.Write(p)
}

// atCapacity reports whether the server serves its cap of connections.
func (s *Server) atCapacity() bool {
	return s.opts.maxConns > 0 && s.connCount.Load() >= int64(s.opts.maxConns)
}

// maxRefusing bounds the connections refused at once (see refuseOverCap);
// past it, more are closed without an answer.
const maxRefusing = 64

// errAtCapacity is the reason given to the requests of a connection
// refused for the connection cap.
var errAtCapacity = errors.New("rpc: server at its connection limit (WithMaxConnections); try again later")

// refuseOverCap refuses a connection that Serve accepted beyond the
// connection cap. A gob client is sent the shutdown notice, and the
// requests it sends within goAwayGrace are answered CodeShuttingDown with
// the reason (not run: a retrying client waits and tries again), so that
// it learns why instead of seeing a connection lost under its call. A TLS
// connection is closed at once (refusing it would cost a handshake), and
// so are all when maxRefusing are being refused already.
func (s *Server) refuseOverCap(nc net.Conn) {
	s.noteRefusal()
	if _, ok := nc.(*tls.Conn); ok {
		nc.Close()
		return
	}
	select {
	case s.refusing <- struct{}{}:
	default:
		nc.Close()
		return
	}
	oc := &otherConn{close: func() { nc.Close() }}
	if !s.addOther(oc, false) {
		<-s.refusing
		nc.Close()
		return
	}
	go func() {
		defer s.connWG.Done()
		defer func() { <-s.refusing }()
		defer s.dropOther(oc, false)
		defer nc.Close()
		s.refuseStream(nc)
	}()
}

// refuseStream answers a gob peer's requests errAtCapacity for
// goAwayGrace; a JSON-RPC peer is only closed.
func (s *Server) refuseStream(nc net.Conn) {
	nc.SetDeadline(time.Now().Add(goAwayGrace))
	sc := &sniffConn{Conn: nc}
	if _, err := io.ReadFull(nc, sc.first[:]); err != nil || looksLikeJSON(sc.first) || looksLikeTLSHello(sc.first) {
		return
	}
	sc.goAway()
	in := s.newMsgReader(sc)
	in.msgTimeout = 0 // the connection's deadline bounds it all
	in.leave(goAwayGrace)
	sc.refuseGob(in, errAtCapacity.Error())
}

// noteRefusal counts a connection refused for the cap, and logs the count
// at most once a second.
func (s *Server) noteRefusal() {
	n := s.refused.Add(1)
	now := time.Now().UnixNano()
	last := s.refusedLog.Load()
	if now-last >= int64(time.Second) && s.refusedLog.CompareAndSwap(last, now) {
		s.logger.Printf("rpc: at the connection limit (%d): %d connections refused so far", s.opts.maxConns, n)
	}
}
