package rpc

import (
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

	"github.com/semrpc/semrpc/internal/coalesce"
	"github.com/semrpc/semrpc/semantics"
)

// serverConn serves one connection speaking net/rpc's gob wire.
type serverConn struct {
	s     *Server
	rwc   io.ReadWriteCloser
	dec   *gob.Decoder
	in    *msgReader    // under dec: whole, checked messages; what it holds was read and not decoded yet
	sem   chan struct{} // bounds calls running for this connection
	work  chan task     // hands a request to an idle worker
	nwork atomic.Int32  // live workers
	// ctx ends when the connection closes. It stops the connection's
	// workers; methods never see it (they run under the server's context
	// and the caller's deadline, so a lost connection is not an answer).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // running calls, and readers that took over

	// A lone request runs on the goroutine that read it (see runInline);
	// if it runs longer than the server's inline grace, the server's
	// inline watcher starts another goroutine to read the connection
	// meanwhile (see inlinewatch.go).
	inline  atomic.Uint64 // inline run number<<2 | inlineIdle, inlineRunning, inlineHandedOff or inlineDone
	seen    uint64        // inline as the watcher saw it last; only the watcher touches it
	readEnd chan struct{} // closed when reading the connection ends

	// out coalesces the responses of concurrent calls into few writes (see
	// coalescer); its lock protects enc and the fields below.
	// A response's tag says whether it counts in the server's inflight:
	// a call's reply does until it is written (or its write failed).
	out    *coalesce.Writer[bool]
	enc    *gob.Encoder
	bad    bool // a write failed; the connection is being closed
	goAway bool // the shutdown notice was sent

	// leaving is set once the notice was sent (Shutdown, or the idle
	// timeout): requests that still arrive are answered ErrShuttingDown.
	leaving atomic.Bool

	closeOnce sync.Once
}

// newConn registers a connection, or closes it and returns nil if the
// server is closed. A registered connection must be served with serve.
func (s *Server) newConn(rwc io.ReadWriteCloser) *serverConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &serverConn{
		s:      s,
		rwc:    rwc,
		in:     s.newMsgReader(rwc),
		sem:    make(chan struct{}, s.opts.maxConcurrent),
		work:   make(chan task),
		ctx:    ctx,
		cancel: cancel,
	}
	c.in.busy = c.busy
	c.dec = gob.NewDecoder(c.in)
	c.readEnd = make(chan struct{})
	c.out = coalesce.New[bool](s.deadlineWriter(rwc))
	c.out.OnWritten = func(counted, _ bool, _ error) {
		if counted {
			c.s.inflight.Add(-1)
		}
	}
	c.out.OnFailed = func(werr error) { c.writeFailed("queued responses", werr) }
	c.enc = gob.NewEncoder(c.out)
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
// it started has finished. A connection beyond the server's connection cap
// (WithMaxConnections) is refused: its requests are answered
// ErrShuttingDown (not run) for a short grace, then it is closed.
func (s *Server) ServeConn(rwc io.ReadWriteCloser) {
	if s.atCapacity() {
		s.noteRefusal()
		if nc, ok := rwc.(net.Conn); ok {
			s.refuseStream(nc)
		}
		rwc.Close()
		return
	}
	s.serveConn(rwc)
}

// serveConn is ServeConn for a connection already admitted under the cap.
func (s *Server) serveConn(rwc io.ReadWriteCloser) {
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
		c.out.WaitIdle() // a writer of replies left behind (see coalescer) ends with the connection
		c.s.lmu.Lock()
		delete(c.s.conns, c)
		last := len(c.s.conns) == 0
		c.s.lmu.Unlock()
		c.s.watch.connEnded(last)
		c.s.connCount.Add(-1)
		c.s.connWG.Done()
	}()
	if !c.read() {
		<-c.readEnd // another goroutine took over reading
	}
}

// read reads requests and runs them until the stream ends (then it reports
// true) or until, while it ran a request itself, another goroutine took
// over reading (then it reports false).
func (c *serverConn) read() (ended bool) {
	defer func() {
		if ended {
			c.inline.Store(inlineDone)
			close(c.readEnd)
		}
	}()
	for {
		if c.in.takeLarge() {
			c.dec = gob.NewDecoder(c.in.replay())
		}
		if len(c.sem) > 0 && c.out.Backlogged() {
			// Replies are backed up behind a write (a peer that reads
			// slowly, or not at all): no new call starts until there is
			// room, as a blocking write would hold a reader that writes.
			if !c.out.LockCtx(c.ctx) {
				return true
			}
			c.out.Unlock()
		}
		var req wireRequest
		if err := c.dec.Decode(&req); err != nil {
			if err == errIdle && c.leaveIdle() {
				continue
			}
			c.logReadError("reading request header", err)
			return true
		}
		c.in.midRequest = true
		m, err := c.s.lookup(req.ServiceMethod)
		if err != nil {
			c.s.rejected.Add(1)
			// Skip the body to stay in step with the stream.
			derr := c.dec.DecodeValue(reflect.Value{})
			c.in.midRequest = false
			if derr != nil {
				c.logReadError("discarding request body", derr)
				c.respondFinal(&req, derr)
				return true
			}
			c.respond(&req, nil, err)
			continue
		}
		ptr, pass := m.newArgs()
		err = c.dec.Decode(ptr)
		c.in.midRequest = false
		if err != nil {
			c.s.rejected.Add(1)
			if isStreamError(err) {
				c.logReadError("reading request body", err)
				c.respondFinal(&req, err)
				return true
			}
			// A value that does not fit the argument type: gob has read the
			// whole message, so the stream is still in step.
			c.respond(&req, nil, reject(CodeBadArguments, "rpc: decoding arguments of %s: %v", req.ServiceMethod, err))
			continue
		}
		if req.Sem != nil && !req.Sem.Valid() {
			c.s.rejected.Add(1)
			c.respond(&req, nil, semantics.ErrBadHeader)
			continue
		}
		if c.leaving.Load() {
			c.s.rejected.Add(1)
			c.respond(&req, nil, reject(CodeShuttingDown, "rpc: connection closing (server idle timeout); %s not run", m.name))
			continue
		}
		select {
		case c.sem <- struct{}{}: // the common case, without a two-way select
		default:
			select {
			case c.sem <- struct{}{}:
			case <-c.ctx.Done():
				return true
			}
		}
		tk := task{req: req, m: m, ptr: ptr, pass: pass}
		if len(c.sem) == 1 && c.in.Buffered() == 0 {
			// Alone: nothing else runs and nothing more was read.
			if !c.runInline(&tk) {
				return false
			}
			continue
		}
		c.dispatch(tk)
	}
}

// busy reports whether the connection has calls running or replies being
// written: a peer waiting for them is not idle.
func (c *serverConn) busy() bool {
	return len(c.sem) > 0 || c.out.Busy()
}

// leaveIdle answers the idle timeout: it sends the shutdown notice (a
// semrpc client then sends nothing more on the connection and closes it),
// and reading goes on for goAwayGrace, answering ErrShuttingDown to
// requests sent before the client read the notice, until the client
// closes or the grace passes. It reports false if the connection must
// close at once (the notice was sent already, or could not be).
func (c *serverConn) leaveIdle() bool {
	if c.leaving.Load() {
		return false
	}
	c.sendGoAway()
	if c.ctx.Err() != nil || !c.leaving.Load() {
		return false
	}
	c.in.leave(goAwayGrace)
	return true
}

// Inline states, the low two bits of serverConn.inline; the rest numbers
// the inline runs, so that a reader that was handed off cannot mistake a
// later run (by the reader that took over) for its own.
const (
	inlineIdle      uint64 = iota // the reader is reading
	inlineRunning                 // the reader is running a request
	inlineHandedOff               // another goroutine reads; the old reader finishes its request and leaves
	inlineDone                    // reading has ended
)

// defaultInlineGrace is how often the server's inline watcher looks at the
// requests running on the goroutines that read them: one that was running
// at two looks in a row has its reading handed to another goroutine. A
// lone call then costs no goroutine switch on the server, and no timer; a
// method that runs longer, or blocks until a later request arrives on the
// same connection, delays the requests behind it by one to two graces.
const defaultInlineGrace = 250 * time.Microsecond

// inlineGrace is defaultInlineGrace, which tests may change (nanoseconds);
// each watcher reads it when it starts.
var inlineGrace atomic.Int64

func init() { inlineGrace.Store(int64(defaultInlineGrace)) }

// runInline runs tk on the reading goroutine. It reports whether this
// goroutine still reads; if the request ran long, the watcher has given
// reading to another goroutine and this one must leave.
func (c *serverConn) runInline(tk *task) bool {
	run := (c.inline.Load()>>2 + 1) << 2
	c.inline.Store(run | inlineRunning)
	c.s.watch.start(c.s) // after the store: see inlineWatch
	c.run(tk)
	return c.inline.CompareAndSwap(run|inlineRunning, run) // run | inlineIdle
}

// takeOver reads the connection in place of a reader that is running the
// inline request st (its run number and inlineRunning) for too long. It
// reports false if the request ended first, or reading did.
func (c *serverConn) takeOver(st uint64) bool {
	if !c.inline.CompareAndSwap(st, st&^3|inlineHandedOff) {
		return false
	}
	c.wg.Add(1) // the connection is served: serve waits for this reader
	go func() {
		defer c.wg.Done()
		c.read()
	}()
	return true
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
		c.run(&tk)
		tk = task{}
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

// run executes one request and writes its response, then frees its place
// among the connection's running calls.
func (c *serverConn) run(tk *task) {
	// Count the call as running until its reply is written, not just
	// while it executes: Shutdown waits for the count to reach zero
	// before it closes the connection under the reply. The reply may be
	// written by another responder (see coalescer): the count drops when
	// it is.
	c.s.inflight.Add(1)
	ctx, cancel := c.s.callContext(tk.req.Timeout)
	reply, err := c.s.executeConn(ctx, c.rwc, tk) // execute, with metadata and peer
	cancel()
	c.respondTagged(&tk.req, reply, err, true)
	<-c.sem
}

// isStreamError reports whether a decode error leaves the gob stream
// unusable (as opposed to a value that did not fit its type).
func isStreamError(err error) bool {
	return errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrTooManyTypes) || errors.Is(err, errBadMessage) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) ||
		isNetError(err)
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

func (c *serverConn) logReadError(what string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || err == errIdle || c.ctx.Err() != nil {
		return
	}
	c.s.logPeer("rpc: closing connection %s: %s: %s", remoteAddr(c.rwc), what, logText(err))
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
	// The answer must be written before the connection closes, even when
	// another call's responder is writing it.
	if c.out.FlushNow() != nil {
		return
	}
	// Closing with the rest of the message unread would reset the
	// connection, and the answer could be lost; skip a bounded amount of
	// it first, within a deadline.
	if n := c.in.drain; n > 0 && n <= maxDrain {
		if nc, ok := c.rwc.(net.Conn); ok {
			nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		}
		io.CopyN(io.Discard, c.rwc, int64(n))
	}
}

// maxDrain bounds how much of an oversized message the server reads and
// discards so that its error answer reaches the client.
const maxDrain = 64 << 20

// respond encodes one response whole into the connection's write buffer,
// which is written at once unless a write is in progress, whose caller then
// writes it (see coalescer). A reply that cannot be encoded, or is over the
// message limit, is not sent: the caller gets a small error saying the
// method ran and its reply is unusable. A failed write closes the
// connection: the stream cannot be trusted after a partial message.
func (c *serverConn) respond(req *wireRequest, reply any, err error) {
	c.respondTagged(req, reply, err, false)
}

// respondTagged is respond; a counted response holds its place in the
// server's inflight count until it is written or its write failed.
func (c *serverConn) respondTagged(req *wireRequest, reply any, err error, counted bool) {
	c.out.Lock()
	if c.encodeResponse(req, reply, err) {
		c.out.Tag(counted)
	} else if counted {
		c.s.inflight.Add(-1) // not sent: no more to wait for
	}
	werr := c.out.UnlockAndFlush(len(c.sem) > 1, 0, nil)
	c.writeFailed(req.ServiceMethod, werr)
}

// writeFailed closes the connection after a failed write.
func (c *serverConn) writeFailed(what string, werr error) {
	if werr == nil {
		return
	}
	c.out.Lock()
	c.bad = true
	c.out.Unlock()
	if c.ctx.Err() == nil && !isNetError(werr) {
		c.s.logPeer("rpc: writing response to %s: %v", quoteName(what), werr)
	}
	if isTimeout(werr) {
		// The peer stopped reading: reset rather than close, or the
		// replies in the socket's buffer wait there for a peer that will
		// not read them, and the peer never sees the end.
		abort(c.rwc)
	}
	c.close()
}

// abort makes closing a TCP connection reset it: the kernel drops what is
// queued for the peer at once. Wrappers (TLS, the sniffed and HTTP
// connections) are looked through.
func abort(rwc io.ReadWriteCloser) {
	for {
		switch c := rwc.(type) {
		case *net.TCPConn:
			c.SetLinger(0)
			return
		case interface{ NetConn() net.Conn }:
			rwc = c.NetConn()
		default:
			return
		}
	}
}

// encodeResponse appends one response to the write buffer and reports
// whether it did. The coalescer's lock must be held.
func (c *serverConn) encodeResponse(req *wireRequest, reply any, err error) bool {
	if c.bad || c.out.Failed() != nil || c.ctx.Err() != nil { // broken, or closing: no more replies
		return false
	}
	resp := wireResponse{ServiceMethod: echoName(req.ServiceMethod), Seq: req.Seq, Header: req.replyHeader, Trailer: req.replyTrailer}
	start := c.out.Buf().Len()
	if err == nil {
		if werr := c.enc.Encode(&resp); werr != nil { // cannot happen for this fixed type
			c.bad = true
			c.close()
			return false
		}
		err = c.encodeReply(req.ServiceMethod, reply, start)
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
			return false
		}
	}
	return true
}

// encodeReply appends reply to the write buffer, after its header (which
// starts at start, type definitions first). If the reply cannot be sent
// (not encodable, or over the message limit), it leaves in the buffer only
// the type definitions gob now counts as sent (the header value and the
// reply value go) and returns the error to answer instead: the method ran,
// its reply is unusable. The coalescer's lock must be held.
func (c *serverConn) encodeReply(method string, reply any, start int) error {
	buf := c.out.Buf()
	hdrEnd := buf.Len()
	hdrValue := start + lastMessageStart(buf.Bytes()[start:hdrEnd])
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
			buf.Truncate(hdrValue) // the header's type definitions stay
			return err
		}
	}
	if err := encodeValue(c.enc, reply); err != nil {
		// What gob wrote is whole type definitions it now counts as sent:
		// they stay, in front of the error answer; the header goes.
		cutMessage(buf, hdrValue, hdrEnd)
		return unencodable(err)
	}
	if last := hdrEnd + lastMessageStart(buf.Bytes()[hdrEnd:]); buf.Len()-last > c.s.opts.maxMsg {
		n := buf.Len() - last
		buf.Truncate(last) // keep the type definitions
		cutMessage(buf, hdrValue, hdrEnd)
		return tooLarge(n)
	}
	return nil
}

// sendGoAway tells the client that the server is shutting down: it should
// send nothing more on this connection, and close it once its calls are
// answered. Requests that still arrive are answered ErrShuttingDown.
func (c *serverConn) sendGoAway() {
	c.out.Lock()
	if c.bad || c.goAway || c.out.Failed() != nil || c.ctx.Err() != nil {
		c.out.Unlock()
		return
	}
	c.goAway = true
	c.leaving.Store(true)
	resp := wireResponse{ServiceMethod: goAwayMethod, Seq: goAwaySeq, Error: ErrShuttingDown.Error(), Code: CodeShuttingDown}
	werr := c.enc.Encode(&resp)
	if werr == nil {
		werr = c.enc.Encode(emptyBody{})
	}
	if werr != nil {
		c.bad = true
		c.out.Unlock()
		c.close()
		return
	}
	werr = c.out.UnlockAndFlush(false, 0, nil)
	c.writeFailed(goAwayMethod, werr)
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
