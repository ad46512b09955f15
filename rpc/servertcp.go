package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// serverConn serves one connection speaking net/rpc's gob wire.
type serverConn struct {
	s     *Server
	rwc   io.ReadWriteCloser
	dec   *gob.Decoder
	limit *frameLimiter
	sem   chan struct{} // bounds calls running for this connection
	work  chan task     // hands a request to an idle worker
	nwork atomic.Int32  // live workers
	// ctx ends when the connection closes. It stops the connection's
	// workers; methods never see it (they run under the server's context
	// and the caller's deadline, so a lost connection is not an answer).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // running calls

	wmu    sync.Mutex   // protects following
	buf    bytes.Buffer // enc writes here; a response is encoded whole before it is written
	enc    *gob.Encoder
	bad    bool // a write failed; the connection is being closed
	goAway bool // the shutdown notice was sent

	closeOnce sync.Once
}

// newConn registers a connection, or closes it and returns nil if the
// server is closed. A registered connection must be served with serve.
func (s *Server) newConn(rwc io.ReadWriteCloser) *serverConn {
	ctx, cancel := context.WithCancel(context.Background())
	limit := newFrameLimiter(rwc, s.opts.maxMsg)
	c := &serverConn{
		s:      s,
		rwc:    rwc,
		limit:  limit,
		dec:    gob.NewDecoder(bufio.NewReader(limit)),
		sem:    make(chan struct{}, s.opts.maxConcurrent),
		work:   make(chan task),
		ctx:    ctx,
		cancel: cancel,
	}
	c.enc = gob.NewEncoder(&c.buf)
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.closed {
		cancel()
		rwc.Close()
		return nil
	}
	s.conns[c] = struct{}{}
	s.connCount.Add(1)
	// Under lmu, so that Close, which sets closed under it, waits for
	// every connection it did not refuse (Serve's and ServeConn's).
	s.connWG.Add(1)
	return c
}

// ServeConn serves one connection and returns when the peer hangs up, the
// stream breaks, or the server shuts down. It returns only after every call
// it started has finished.
func (s *Server) ServeConn(rwc io.ReadWriteCloser) {
	if c := s.newConn(rwc); c != nil {
		c.serve()
	}
}

func (c *serverConn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.rwc.Close()
	})
}

func (c *serverConn) serve() {
	defer func() {
		c.close()
		c.wg.Wait()
		c.s.lmu.Lock()
		delete(c.s.conns, c)
		c.s.lmu.Unlock()
		c.s.connCount.Add(-1)
		c.s.connWG.Done()
	}()
	for {
		var req wireRequest
		if err := c.dec.Decode(&req); err != nil {
			c.logReadError("reading request header", err)
			return
		}
		m, err := c.s.lookup(req.ServiceMethod)
		if err != nil {
			c.s.rejected.Add(1)
			// Skip the body to stay in step with the stream.
			if derr := c.dec.DecodeValue(reflect.Value{}); derr != nil {
				c.logReadError("discarding request body", derr)
				c.respondFinal(&req, derr)
				return
			}
			c.respond(&req, nil, err)
			continue
		}
		ptr, pass := m.newArgs()
		if err := c.dec.Decode(ptr); err != nil {
			c.s.rejected.Add(1)
			if isStreamError(err) {
				c.logReadError("reading request body", err)
				c.respondFinal(&req, err)
				return
			}
			// A value that does not fit the argument type: gob has read the
			// whole message, so the stream is still in step.
			c.respond(&req, nil, reject(CodeRejected, "rpc: decoding arguments of %s: %v", req.ServiceMethod, err))
			continue
		}
		if req.Sem != nil && !req.Sem.Valid() {
			c.s.rejected.Add(1)
			c.respond(&req, nil, semantics.ErrBadHeader)
			continue
		}
		select {
		case c.sem <- struct{}{}: // the common case, without a two-way select
		default:
			select {
			case c.sem <- struct{}{}:
			case <-c.ctx.Done():
				return
			}
		}
		c.dispatch(task{req: req, m: m, ptr: ptr, pass: pass})
	}
}

// task is one decoded request waiting for a worker.
type task struct {
	req  wireRequest
	m    *methodType
	ptr  any
	pass reflect.Value
}

// idleWorkers is how many workers a connection keeps between calls. Reusing
// a worker saves more than a goroutine start: a fresh goroutine's stack
// grows (and is copied) on every call, a worker's only once.
const idleWorkers = 128

// dispatch runs tk on an idle worker, or on a new one.
func (c *serverConn) dispatch(tk task) {
	select {
	case c.work <- tk:
	default:
		c.nwork.Add(1)
		c.wg.Add(1)
		go c.worker(tk)
	}
}

func (c *serverConn) worker(tk task) {
	defer c.wg.Done()
	for {
		// Count the call as running until its reply is written, not just
		// while it executes: Shutdown waits for the count to reach zero
		// before it closes the connection under the reply.
		c.s.inflight.Add(1)
		ctx, cancel := c.s.callContext(tk.req.Timeout)
		reply, err := c.s.executeConn(ctx, c.rwc, &tk) // execute, with metadata and peer
		cancel()
		c.respond(&tk.req, reply, err)
		c.s.inflight.Add(-1)
		tk = task{}
		<-c.sem
		if c.nwork.Load() > idleWorkers {
			c.nwork.Add(-1)
			return
		}
		select {
		case tk = <-c.work:
		case <-c.ctx.Done():
			c.nwork.Add(-1)
			return
		}
	}
}

// isStreamError reports whether a decode error leaves the gob stream
// unusable (as opposed to a value that did not fit its type).
func isStreamError(err error) bool {
	return errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrTooManyTypes) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) ||
		isNetError(err)
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

func (c *serverConn) logReadError(what string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || c.ctx.Err() != nil {
		return
	}
	c.s.logger.Printf("rpc: closing connection %s: %s: %v", remoteAddr(c.rwc), what, err)
}

func remoteAddr(rwc io.ReadWriteCloser) string {
	if nc, ok := rwc.(net.Conn); ok && nc.RemoteAddr() != nil {
		return "from " + nc.RemoteAddr().String()
	}
	return "(not a network connection)"
}

// respondFinal answers the request whose body broke the stream, so that the
// caller gets a clear error (such as ErrMessageTooLarge) before the
// connection closes.
func (c *serverConn) respondFinal(req *wireRequest, err error) {
	if !errors.Is(err, ErrMessageTooLarge) {
		return
	}
	c.respond(req, nil, reject(CodeTooLarge, "%v", err))
	// Closing with the rest of the message unread would reset the
	// connection, and the answer could be lost; skip a bounded amount of
	// it first, within a deadline.
	if n := c.limit.drain; n > 0 && n <= maxDrain {
		if nc, ok := c.rwc.(net.Conn); ok {
			nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		}
		io.CopyN(io.Discard, c.rwc, int64(n))
	}
}

// maxDrain bounds how much of an oversized message the server reads and
// discards so that its error answer reaches the client.
const maxDrain = 64 << 20

// respond writes one response, encoded whole before it is written. A reply
// that cannot be encoded, or is over the message limit, is not sent: the
// caller gets a small error saying the method ran and its reply is
// unusable. A failed write closes the connection: the stream cannot be
// trusted after a partial message.
func (c *serverConn) respond(req *wireRequest, reply any, err error) {
	resp := wireResponse{ServiceMethod: req.ServiceMethod, Seq: req.Seq, Header: req.replyHeader, Trailer: req.replyTrailer}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.bad || c.ctx.Err() != nil { // broken, or closing: no more replies
		return
	}
	c.buf.Reset()
	if err == nil {
		if werr := c.enc.Encode(&resp); werr != nil { // cannot happen for this fixed type
			c.bad = true
			c.close()
			return
		}
		err = c.encodeReply(req.ServiceMethod, reply)
	}
	if err != nil {
		resp.Code, resp.Error = EncodeError(err)
		werr := c.enc.Encode(&resp)
		if werr == nil {
			werr = c.enc.Encode(emptyBody{})
		}
		if werr != nil {
			c.bad = true
			c.close()
			return
		}
	}
	_, werr := c.rwc.Write(c.buf.Bytes())
	if c.buf.Cap() > maxKeptBuffer {
		c.buf = bytes.Buffer{}
	}
	if werr != nil {
		c.bad = true
		if c.ctx.Err() == nil && !isNetError(werr) {
			c.s.logger.Printf("rpc: writing response to %s: %v", req.ServiceMethod, werr)
		}
		c.close()
	}
}

// encodeReply appends reply to c.buf, after its header. If the reply cannot
// be sent (not encodable, or over the message limit), it leaves in c.buf
// only the type definitions gob now counts as sent (the header value and
// the reply value go) and returns the error to answer instead: the method
// ran, its reply is unusable. c.wmu must be held.
func (c *serverConn) encodeReply(method string, reply any) error {
	hdrEnd := c.buf.Len()
	hdrValue := lastMessageStart(c.buf.Bytes()[:hdrEnd])
	tooLarge := func(n int) error {
		return semantics.Unusable(fmt.Errorf("rpc: %s ran, but its reply (%d bytes) is over the message limit (%d bytes): %w",
			method, n, c.s.opts.maxMsg, ErrMessageTooLarge))
	}
	unencodable := func(err error) error {
		return semantics.Unusable(fmt.Errorf("rpc: %s ran, but its reply could not be encoded: %v", method, err))
	}
	if needsTrial(reply) {
		// An interface inside: try it on a throwaway encoder first (see
		// gobsafe.go), which also measures it whole.
		n, err := trialEncode(reply)
		if err == nil && n > c.s.opts.maxMsg {
			err = tooLarge(n)
		} else if err != nil {
			err = unencodable(err)
		}
		if err != nil {
			c.buf.Truncate(hdrValue) // the header's type definitions stay
			return err
		}
	}
	if err := encodeValue(c.enc, reply); err != nil {
		// What gob wrote is whole type definitions it now counts as sent:
		// they stay, in front of the error answer; the header goes.
		cutMessage(&c.buf, hdrValue, hdrEnd)
		return unencodable(err)
	}
	if last := lastMessageStart(c.buf.Bytes()); c.buf.Len()-last > c.s.opts.maxMsg {
		n := c.buf.Len() - last
		c.buf.Truncate(last) // keep the type definitions
		cutMessage(&c.buf, hdrValue, hdrEnd)
		return tooLarge(n)
	}
	return nil
}

// sendGoAway tells the client that the server is shutting down: it should
// send nothing more on this connection, and close it once its calls are
// answered. Requests that still arrive are answered ErrShuttingDown.
func (c *serverConn) sendGoAway() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.bad || c.goAway || c.ctx.Err() != nil {
		return
	}
	c.goAway = true
	c.buf.Reset()
	resp := wireResponse{ServiceMethod: goAwayMethod, Seq: goAwaySeq, Error: ErrShuttingDown.Error(), Code: CodeShuttingDown}
	werr := c.enc.Encode(&resp)
	if werr == nil {
		werr = c.enc.Encode(emptyBody{})
	}
	if werr == nil {
		_, werr = c.rwc.Write(c.buf.Bytes())
	}
	if werr != nil {
		c.bad = true
		c.close()
	}
}

// lastMessageStart returns the offset of the last gob message in b, a
// sequence of whole messages (each a length, as a gob unsigned integer,
// then that many bytes).
func lastMessageStart(b []byte) int {
	last := 0
	for i := 0; i < len(b); {
		last = i
		n, k := uint64(b[i]), 1
		if b[i] >= 0x80 {
			k = 1 + 256 - int(b[i])
			n = 0
			for _, x := range b[i+1 : min(i+k, len(b))] {
				n = n<<8 | uint64(x)
			}
		}
		if n > uint64(len(b)) {
			break
		}
		i += k + int(n)
	}
	return last
}
