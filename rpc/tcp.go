package rpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// tcpTransport is the Transport behind Dial: net/rpc's gob wire over one
// connection at a time, redialled on demand after the connection is lost.
type tcpTransport struct {
	addr      string // for messages
	dial      func(ctx context.Context) (net.Conn, error)
	maxMsg    int
	redialMin time.Duration
	redialMax time.Duration

	// pending recycles pendingCalls and their channels. It is the
	// transport's own, not the package's: a channel made in a
	// testing/synctest bubble must not be used outside it, so a transport
	// made in a bubble keeps its channels there.
	pending sync.Pool

	mu       sync.Mutex // protects following
	cur      *tcpConn
	dialing  chan struct{} // closed when the dial in progress ends
	lastErr  error
	nextDial time.Time
	delay    time.Duration
	closed   bool
	draining map[*tcpConn]struct{} // replaced after the server's notice; ended when their calls are

	readers  sync.WaitGroup // reader goroutines, and the idle watcher
	watching atomic.Bool    // the idle watcher runs (see watchIdle)
	closing  chan struct{}  // closed by Close
}

var _ Transport = (*tcpTransport)(nil)

// NewStreamTransport returns a transport speaking net/rpc's gob wire over
// connections made by dial: the transport behind Dial, for any stream (TLS,
// net.Pipe, a Unix socket). It does not connect until the first call, and
// calls dial again after a connection is lost. Options: WithRedialBackoff,
// WithMaxMessageSize.
//
// A connection that gives its socket (syscall.Conn, as *net.TCPConn and
// *net.UnixConn do) is read by the caller of a call that finds nobody
// reading it, with no goroutine in between, and by nobody while no call is
// pending; the caller peeks at the socket before it sends on such a
// connection (doc/semantics.md, R24). Any other stream (TLS, net.Pipe, a
// wrapper) is read by a goroutine for its whole life. A wrapper may give
// the socket below it through SyscallConn only if it does not buffer or
// transform what it reads.
func NewStreamTransport(dial func(ctx context.Context) (net.Conn, error), opts ...Option) Transport {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return newStreamTransport("stream", dial, &o)
}

func newTCPTransport(network, address string, o *options) *tcpTransport {
	d := net.Dialer{Timeout: o.dialTimeout, KeepAlive: 30 * time.Second}
	return newStreamTransport(address, func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, network, address)
	}, o)
}

func newStreamTransport(name string, dial func(ctx context.Context) (net.Conn, error), o *options) *tcpTransport {
	return &tcpTransport{
		addr:      name,
		dial:      dial,
		maxMsg:    o.maxMsg,
		redialMin: o.redialMin,
		redialMax: o.redialMax,
		closing:   make(chan struct{}),
	}
}

// conn returns the live connection, dialling if there is none. Dial
// failures are not-sent errors, permanent ones (TLS verification, a bad
// address) marked so. After a failed dial the next one waits for the redial
// backoff: meanwhile a call fails at once, or, with wait, waits for it and
// dials again, until ctx ends.
func (t *tcpTransport) conn(ctx context.Context, wait bool) (*tcpConn, error) {
	t.mu.Lock()
	for {
		if t.closed {
			t.mu.Unlock()
			return nil, errClosed()
		}
		if t.cur != nil {
			c := t.cur
			t.mu.Unlock()
			return c, nil
		}
		if t.dialing != nil {
			ch := t.dialing
			t.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, semantics.NotSent(fmt.Errorf("rpc: waiting for dial of %s: %w", t.addr, ctx.Err()))
			}
			t.mu.Lock()
			continue
		}
		if pause := time.Until(t.nextDial); pause > 0 {
			err := t.lastErr
			t.mu.Unlock()
			if !wait {
				return nil, semantics.NotSent(fmt.Errorf("rpc: not connected to %s (redial in %v): %w",
					t.addr, pause.Round(time.Millisecond), err))
			}
			timer := time.NewTimer(pause)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return nil, semantics.NotSent(fmt.Errorf("rpc: waiting for %s (last dial: %v): %w", t.addr, err, ctx.Err()))
			}
			t.mu.Lock()
			continue
		}
		ch := make(chan struct{})
		t.dialing = ch
		t.mu.Unlock()

		nc, err := t.dial(ctx)

		t.mu.Lock()
		t.dialing = nil
		close(ch)
		if err != nil {
			if ctx.Err() == nil { // a caller's cancel says nothing about the server
				t.lastErr = err
				t.delay = min(max(2*t.delay, t.redialMin), t.redialMax)
				jittered := t.delay/2 + rand.N(t.delay/2+1)
				t.nextDial = time.Now().Add(jittered)
			}
			derr := semantics.NotSent(fmt.Errorf("rpc: dial %s: %w", t.addr, err))
			if isPermanentDialError(err) {
				t.mu.Unlock()
				return nil, semantics.Permanent(derr)
			}
			if wait && ctx.Err() == nil {
				continue
			}
			t.mu.Unlock()
			return nil, derr
		}
		if t.closed {
			t.mu.Unlock()
			nc.Close()
			return nil, errClosed()
		}
		t.delay, t.lastErr = 0, nil
		c := newTCPConn(t, nc)
		t.cur = c
		if c.probe == nil {
			// Callers cannot read this stream themselves (see readOwn): a
			// reader goroutine reads it for as long as it lives.
			c.reader = readerGoroutine
			t.readers.Add(1)
			go c.readLoop()
		} else {
			// Nobody reads it until a call comes, which may be never (a
			// connection dialled by WithEagerDial): the idle watcher must
			// know of it, as of any connection that went idle, or a
			// server's shutdown notice on it is not read.
			c.mu.Lock()
			c.idle()
			c.idleAt = 0 // no reply read yet: the first call looks at it (see register)
			c.mu.Unlock()
		}
	}
}

// isPermanentDialError reports whether a dial failed for a reason that
// waiting will not cure: the address is malformed or names no host, or the
// TLS handshake found a certificate it cannot trust (or the peer refused
// ours, or it does not speak TLS).
func isPermanentDialError(err error) bool {
	var (
		addrErr  *net.AddrError
		netErr   net.UnknownNetworkError
		parseErr *net.ParseError
		dnsErr   *net.DNSError
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		host     x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	if semantics.IsPermanent(err) { // a dialer's own verdict (DialHTTP: not an RPC path)
		return true
	}
	switch {
	case errors.As(err, &addrErr), errors.As(err, &netErr), errors.As(err, &parseErr):
		return true
	case errors.As(err, &dnsErr):
		return dnsErr.IsNotFound
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid),
		errors.As(err, &record):
		return true
	}
	return isTLSAlert(err)
}

// isTLSAlert reports whether err is a fatal alert sent by the TLS peer
// (crypto/tls reports it as a net.OpError with Op "remote error"): the peer
// refused the handshake.
func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// Close closes the connection; calls pending on it fail as may-have-executed.
func (t *tcpTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.closing)
	c := t.cur
	t.cur = nil
	// Connections replaced after the server's notice, with calls still
	// pending on them, are failed too: their readers end with them.
	draining := t.draining
	t.draining = nil
	t.mu.Unlock()
	if c != nil {
		c.fail(ErrClientClosed)
		c.out.waitIdle()
	}
	for d := range draining {
		d.fail(ErrClientClosed)
		d.out.waitIdle()
	}
	t.readers.Wait()
	return nil
}

// pendingCall is a call waiting for its reply. Exactly one party completes
// it: the reader (with the reply), fail (with the connection's error), or
// the caller itself (its context ended, or its request could not be
// written). Whoever wins take does, and nobody else touches reply.
type pendingCall struct {
	reply any
	md    *ReplyMetadata // receives the reply's metadata, or nil
	done  chan error     // buffered: the completer never blocks
	pool  *sync.Pool     // its transport's, where it goes once done was read
	taken atomic.Bool
	// inWrite is set while the call's request waits in a connection's
	// write buffer or is being written; unsent, when a failed write did not
	// send it whole. Both are final once inWrite is false, and the
	// connection's writer touches the call no more (see tcpConn.settle).
	inWrite atomic.Bool
	unsent  atomic.Bool
}

// take claims the right to complete the call.
func (p *pendingCall) take() bool { return p.taken.CompareAndSwap(false, true) }

// Calls are pooled (in their transport's pending pool) only once their done
// channel was read: then neither the reader nor fail holds them any more.
func (t *tcpTransport) getPending(reply any) *pendingCall {
	p, _ := t.pending.Get().(*pendingCall)
	if p == nil {
		p = &pendingCall{done: make(chan error, 1), pool: &t.pending}
	}
	p.reply = reply
	p.taken.Store(false)
	p.unsent.Store(false)
	return p
}

// wait receives the call's outcome from whoever took it, and pools it.
func (p *pendingCall) wait() error {
	err := <-p.done
	p.reply, p.md = nil, nil
	p.pool.Put(p)
	return err
}

// tcpConn is one connection. Its replies are read by one party at a time,
// the reader: the caller of a call that found nobody reading (it reads
// until its own reply is in, see readOwn), a reader goroutine while calls
// are pending after it, or nobody while no reply is expected.
type tcpConn struct {
	t   *tcpTransport
	nc  net.Conn
	br  *bufio.Reader // under dec: what it holds was read and not decoded yet
	dec *gob.Decoder

	// probe reports whether the socket has nothing to read, without
	// reading (see probe_unix.go); nil when the stream cannot be probed
	// (TLS, pipes, wrapped connections): then a reader goroutine reads it
	// for as long as it lives, and callers never read.
	probe func() bool

	// Only the reader touches these.
	readerCtx context.Context // a reading caller's, whose end interrupts its wait for a reply
	waiting   bool            // the reader waits for the next message, between messages
	graceEnd  time.Time       // the reading caller's ctx ended in the middle of a message: its grace ends then
	interrupt func()          // sets a past read deadline: ends the reader's wait

	// out coalesces the requests of concurrent calls into few writes; enc
	// writes into it, under its lock. A request's tag is its call.
	out *coalescer[queuedRequest]
	enc *gob.Encoder

	calls atomic.Int32 // RoundTrips using the connection: writes wait for company when others are

	mu       sync.Mutex // protects following
	pending  map[uint64]*pendingCall
	seq      uint64
	err      error // why the connection broke; nil while it works
	draining bool  // the server said it is going away: no new calls
	answered bool  // a response has been read
	reader   int8  // readerNone, readerCaller or readerGoroutine
	// readerCall is the call of the caller who is to read (readerCaller)
	// until it begins to read (see beginReading).
	readerCall *pendingCall
	idleRun    uint64 // counts the times reader became readerNone
	idleAt     int64  // monotonic() when reader last became readerNone; 0 if not known (see monotonic)
	idleSeen   uint64 // idleRun at the idle watcher's last look

	// A call whose caller gave up stays pending as abandoned until its
	// reply is read: while any call is pending, somebody reads.
}

// Who reads a connection's replies (tcpConn.reader).
const (
	readerNone      int8 = iota // no reply is expected, and nobody reads
	readerCaller                // a caller reads until its own reply is in
	readerGoroutine             // a reader goroutine reads until no call is pending
)

// abandoned stands in the pending map for a call whose caller gave up
// before its reply came: the reply is still read (and dropped), and until
// then the connection is not idle. It is taken for good.
var abandoned = func() *pendingCall {
	p := new(pendingCall)
	p.taken.Store(true)
	return p
}()

func newTCPConn(t *tcpTransport, nc net.Conn) *tcpConn {
	c := &tcpConn{
		t:       t,
		nc:      nc,
		pending: make(map[uint64]*pendingCall),
		probe:   newProbe(nc),
		idleRun: 1, // idle since it came: the watcher's first look does not count
	}
	c.br = bufio.NewReader(newFrameLimiter(deadlineReader{c}, t.maxMsg))
	c.dec = gob.NewDecoder(c.br)
	c.interrupt = func() { c.nc.SetReadDeadline(aLongTimeAgo) }
	c.out = newCoalescer[queuedRequest](nc)
	c.out.onWritten = c.written
	c.out.onFailed = c.fail
	c.enc = gob.NewEncoder(c.out)
	return c
}

// RoundTrip implements Transport.
func (t *tcpTransport) RoundTrip(ctx context.Context, req *Request, reply any) error {
	if err := ctx.Err(); err != nil {
		return semantics.NotSent(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, err))
	}
	call := t.getPending(reply)
	call.md = req.ReplyMetadata
	c, seq, reads, err := t.register(ctx, req, call)
	if err != nil {
		call.reply, call.md = nil, nil
		call.pool.Put(call)
		return err
	}
	c.calls.Add(1)
	defer c.calls.Add(-1)
	if err := c.write(ctx, req, seq, call); err != nil {
		// This call was never sent: out of the pending map, so that a
		// failure of the connection does not give it fail's
		// may-have-executed verdict. (A request that was queued is
		// answered through call.done, below: by the server, by written as
		// not sent, or by fail.)
		c.forget(seq)
		if reads && c.beginReading(call) {
			c.stopReading()
		}
		if !call.take() {
			// A failure of the connection took it first: this request was
			// not sent all the same, and that is its verdict.
			call.wait()
		}
		return err // not pooled when it was ours (see getPending)
	}
	if reads && c.beginReading(call) {
		return c.settle(call, c.readOwn(ctx, req, seq, call))
	}
	done := ctx.Done()
	if done == nil { // a context that never ends: no select needed
		return c.settle(call, <-call.done)
	}
	select {
	case err := <-call.done:
		return c.settle(call, err)
	case <-done:
	}
	if call.take() {
		c.abandon(seq)
		return semantics.MaybeExecuted(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, ctx.Err()))
	}
	// The reader took the call and is decoding its reply right now. It must
	// finish before we return (it writes into reply), but a peer may stall
	// in the middle of the body: after a grace period, break the connection
	// so that the decode ends.
	grace := time.NewTimer(replyGrace)
	defer grace.Stop()
	select {
	case err := <-call.done:
		return c.settle(call, err)
	case <-grace.C:
		c.fail(fmt.Errorf("rpc: reply of %s stalled after the caller gave up: %w", req.ServiceMethod, ctx.Err()))
		err := c.settle(call, <-call.done)
		if cl := semantics.ClassOf(err); cl != semantics.ClassNotSent && cl != semantics.ClassMaybeExecuted {
			return err // the server's answer was complete after all
		}
		return semantics.MaybeExecuted(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, ctx.Err()))
	}
}

// settle returns the outcome err of a call that was registered and
// queued for writing, and pools the call. A connection lost under the call
// gives it a may-have-executed verdict, but when the reader saw the loss
// first, a write may still be sending the request, and may fail: settle
// waits for the connection's writes to end, and if the request was not
// written whole, the call was not sent, and that is its verdict.
//
// A call is pooled only once the writer is done with it: a reply can beat
// the end of the write that carried its request (a request refused as too
// large is answered before it is all written).
//
// Any other outcome (the server's answer) stands whatever the write does:
// a call that has it does not wait for the write, which may go on for long
// after the request itself left (the rest of its batch, to a peer that
// stopped reading); still held by the writer, it is not pooled.
func (c *tcpConn) settle(call *pendingCall, err error) error {
	if call.inWrite.Load() {
		if !errors.Is(err, ErrConnLost) || semantics.ClassOf(err) != semantics.ClassMaybeExecuted {
			return err
		}
		c.out.waitUntil(func() bool { return !call.inWrite.Load() })
	}
	if call.unsent.Load() && errors.Is(err, ErrConnLost) && semantics.ClassOf(err) == semantics.ClassMaybeExecuted {
		err = semantics.NotSent(fmt.Errorf("%w: request not sent: %w", ErrConnLost, c.out.writeErr()))
	}
	call.reply, call.md = nil, nil // nothing of the caller's stays in the pool
	call.pool.Put(call)
	return err
}

// register finds a connection that takes new calls and enters call in its
// pending map. A connection that broke or is going away since conn returned
// it is replaced by a fresh one. reads reports that nobody was reading the
// connection: the caller now is to read, and, if beginReading says it
// still is, must read (readOwn) or stop (stopReading).
//
// A connection nobody reads expects no reply, so anything the socket holds
// (the server's shutdown notice, its close, a reset) says it must not be
// used: it is closed, and the call goes to a fresh connection. The look
// costs one system call, which does not read; it is skipped on a
// connection whose last reply was read less than lookAfter ago (a caller
// calling again at once, the common case under load).
func (t *tcpTransport) register(ctx context.Context, req *Request, call *pendingCall) (c *tcpConn, seq uint64, reads bool, err error) {
	for tries := 0; ; tries++ {
		c, err := t.conn(ctx, req.WaitForReady)
		if err != nil {
			return nil, 0, false, err
		}
		c.mu.Lock()
		if c.err == nil && !c.draining {
			if c.reader == readerNone {
				if c.br.Buffered() > 0 || (c.idleLongEnough() && !c.probe()) {
					// Closed outright: nobody waits on it, and what came
					// need not be read (a reader would wait for ever on
					// bytes that are not a whole message). The server sees
					// the close, as it would once its notice was read.
					// Marked going away first, so that no other call
					// registers on it before fail ends it.
					c.draining = true
					c.mu.Unlock()
					c.fail(errUnasked)
					if tries >= 3 { // a server that sends before it is asked, each time
						return nil, 0, false, semantics.NotSent(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, errUnasked))
					}
					continue
				}
				c.reader, reads = readerCaller, true
				c.readerCall = call
			} else if c.readerCall != nil {
				// The caller who is to read has not begun: it may be held
				// writing its request (behind a full write buffer, to a
				// server that stopped reading until its replies are read).
				// This call's reply must not wait for that, or neither side
				// reads: a reader goroutine reads from now on, and that
				// caller waits for its reply as others do.
				c.readerCall = nil
				c.startReader()
			}
			c.seq++
			seq := c.seq
			c.pending[seq] = call
			c.mu.Unlock()
			return c, seq, reads, nil
		}
		cerr := c.err
		c.mu.Unlock()
		if isTLSRefusal(cerr) {
			return nil, 0, false, cerr // a new connection would be refused too
		}
		// fail or goAway marked c but has not replaced it yet: do it here,
		// so that conn dials afresh.
		c.goAway()
		if tries >= 3 {
			return nil, 0, false, semantics.NotSent(fmt.Errorf("rpc: %s: %w: %v", req.ServiceMethod, ErrConnLost, cerr))
		}
	}
}

// forget drops seq from the pending map. A connection that is going away
// is closed by its reader, not here: the reader may be decoding a reply
// whose call it already took out of the map.
func (c *tcpConn) forget(seq uint64) {
	c.mu.Lock()
	delete(c.pending, seq)
	c.mu.Unlock()
}

// lookAfter is how long a connection stays idle before a caller looks at
// its socket before sending on it (see register). A reader goroutine that
// read it all the time would find a close about this late too: it must be
// woken and scheduled. A call sent within it into a connection the server
// just closed ends may-have-executed, not not-sent: less precise, never
// wrong.
const lookAfter = 50 * time.Microsecond

// clockBase anchors monotonic.
var clockBase = time.Now()

// monotonic returns nanoseconds on the monotonic clock (one clock read),
// or 0 in a testing/synctest bubble. There the clock is the bubble's fake
// one, which stands still while goroutines run or wait on the network,
// however long that takes for real: measured on it, a connection closed by
// the server long ago would look idle for no time at all, and never be
// looked at (and a time taken outside a bubble cannot be compared with
// one taken inside). A bubble's time has no monotonic reading, which is how
// it is told apart.
func monotonic() int64 {
	now := time.Now()
	if now == now.Round(0) { // Round(0) drops the monotonic reading, if any
		return 0
	}
	return max(int64(now.Sub(clockBase)), 1)
}

// idleLongEnough reports whether c, idle, has been so for more than
// lookAfter, or for a time not known: then it is looked at before it is
// sent on. c.mu must be held.
func (c *tcpConn) idleLongEnough() bool {
	now := monotonic()
	return now == 0 || c.idleAt == 0 || time.Duration(now-c.idleAt) > lookAfter
}

// abandon leaves seq pending as abandoned: its caller gave up, and its
// reply, if it comes, is read and dropped. (A reader that took the call out
// of the map already reads it.)
func (c *tcpConn) abandon(seq uint64) {
	c.mu.Lock()
	if _, ok := c.pending[seq]; ok {
		c.pending[seq] = abandoned
	}
	c.mu.Unlock()
}

// replyGrace is how long a call whose context has ended waits for the
// reply being decoded for it before it breaks the connection.
const replyGrace = 50 * time.Millisecond

// queuedRequest names the call of a request in a connection's write buffer.
type queuedRequest struct {
	seq  uint64
	call *pendingCall
}

// write encodes the request whole into the connection's write buffer,
// which is written at once unless a write is in progress, whose caller
// then writes it (see coalescer). An error means the server did not get
// the request: arguments that cannot be encoded fail this call alone (not
// sent, permanent) and leave the connection as it was; a connection whose
// write failed earlier takes no more requests. When a write fails, every
// call whose request it did not write whole is completed as not sent, and
// the connection is failed, which gives the calls whose requests were
// written their may-have-executed verdict.
//
// A request that must wait for room in the buffer (a peer that reads
// slowly) stops waiting when ctx ends: not sent.
func (c *tcpConn) write(ctx context.Context, req *Request, seq uint64, call *pendingCall) error {
	if !c.out.lockCtx(ctx) {
		return semantics.NotSent(fmt.Errorf("rpc: %s: waiting to send behind %d queued bytes: %w", req.ServiceMethod, maxQueuedBytes, ctx.Err()))
	}
	err := c.encodeRequest(req, seq, call)
	if broken := c.out.unlockAndFlush(c.calls.Load() > 1); broken != nil {
		c.fail(broken)
	}
	return err
}

// encodeRequest appends the request to the write buffer. The coalescer's
// lock must be held.
func (c *tcpConn) encodeRequest(req *Request, seq uint64, call *pendingCall) error {
	if err := c.out.failed(); err != nil {
		return semantics.NotSent(fmt.Errorf("rpc: sending %s: %w", req.ServiceMethod, err))
	}
	buf := c.out.buf()
	start := buf.Len()
	wr := wireRequest{ServiceMethod: req.ServiceMethod, Seq: seq, Sem: req.Header, Timeout: int64(req.Timeout), Metadata: req.Metadata}
	if err := c.enc.Encode(&wr); err != nil { // cannot happen for this fixed type
		buf.Truncate(start)
		return semantics.NotSent(fmt.Errorf("rpc: encoding request header of %s: %w", req.ServiceMethod, err))
	}
	hdrEnd := buf.Len()
	// The header value is the last message from start (type definitions
	// may come before it); only the error paths need to know where.
	hdrValue := func() int { return start + lastMessageStart(buf.Bytes()[start:hdrEnd]) }
	if needsTrial(req.Args) {
		if _, err := trialEncode(req.Args); err != nil {
			// The header value goes; type definitions gob wrote before it
			// stay, as gob now counts them as sent.
			buf.Truncate(hdrValue())
			return semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: encoding arguments of %s: %w (call not sent)", req.ServiceMethod, err)))
		}
	}
	if err := encodeValue(c.enc, req.Args); err != nil {
		// Nothing of this request goes out. But the type definitions gob
		// wrote (whole messages, before the header value and after it) it
		// now counts as sent: they must reach the server, which takes type
		// definitions anywhere between values.
		cutMessage(buf, hdrValue(), hdrEnd)
		return semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: encoding arguments of %s: %w (call not sent)", req.ServiceMethod, err)))
	}
	call.inWrite.Store(true)
	c.out.tag(queuedRequest{seq: seq, call: call})
	return nil
}

// written is told the fate of each queued request once the write that
// carried it is over, before the write ends: a request a failed write did
// not send whole leaves the pending map (fail must not give it its
// may-have-executed verdict) and its call is completed as not sent. The
// writer then fails the connection.
func (c *tcpConn) written(q queuedRequest, whole bool, werr error) {
	if !whole {
		q.call.unsent.Store(true)
		c.forget(q.seq)
		if q.call.take() {
			q.call.done <- semantics.NotSent(fmt.Errorf("rpc: sending request: %w", werr))
		}
	}
	q.call.inWrite.Store(false) // the last touch: the caller may pool it now
}

// cutMessage removes the bytes [from, to) of buf.
func cutMessage(buf *bytes.Buffer, from, to int) {
	b := buf.Bytes()
	n := copy(b[from:], b[to:])
	buf.Truncate(from + n)
}

// maxKeptBuffer bounds the encode buffer a connection keeps between calls.
const maxKeptBuffer = 64 << 10

// encodeValue encodes v, turning a panic (gob panics on some values, a
// GobEncoder may panic) into an error.
func encodeValue(enc *gob.Encoder, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gob: %v", p)
		}
	}()
	if v == nil {
		return errors.New("gob: cannot encode nil value")
	}
	return enc.Encode(v)
}

// readLoop is a reader goroutine: it reads replies until the connection
// ends or, on a connection whose callers read, until no call is pending.
func (c *tcpConn) readLoop() {
	defer c.t.readers.Done()
	for c.readOne() {
		if c.probe == nil {
			continue
		}
		c.mu.Lock()
		if len(c.pending) == 0 && c.err == nil {
			c.idle()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// startReader starts a reader goroutine. c.mu must be held, and c not
// failed: then Close, which fails c before it waits for the readers, waits
// for this one too.
func (c *tcpConn) startReader() {
	c.reader = readerGoroutine
	c.t.readers.Add(1)
	go c.readLoop()
}

// idle leaves c with nobody reading: no reply is expected. The transport's
// idle watcher gives it a reader goroutine if it stays idle (see
// watchIdle). c.mu must be held, and c not failed.
func (c *tcpConn) idle() {
	c.reader = readerNone
	c.idleRun++
	c.idleAt = monotonic()
	t := c.t
	if !t.watching.Load() && t.watching.CompareAndSwap(false, true) {
		t.readers.Add(1) // as in startReader: Close waits for the watcher
		go t.watchIdle()
	}
}

// defaultIdleLook is how often a transport's idle watcher looks at its
// connections.
const defaultIdleLook = 10 * time.Millisecond

// idleLook is defaultIdleLook, which tests may change (nanoseconds); each
// watcher reads it when it starts.
var idleLook atomic.Int64

func init() { idleLook.Store(int64(defaultIdleLook)) }

// watchIdle runs while the transport has a connection that nobody reads.
// Such a connection expects no reply, and a caller finds out before it
// sends whether the server closed it or said it is going away (see
// register); but until then the connection stays open, and a server
// shutting down waits for its clients to close their connections (up to a
// grace). So a connection found idle at two looks in a row (idle for
// idleLook at least) gets a reader goroutine, which reads what comes and
// closes the connection when the server ends it. The next call on it hands
// off its reply as before; once no call is pending the reader leaves and
// callers read again.
//
// The watcher leaves when two looks in a row find no idle connection; the
// next connection to go idle starts one again.
func (t *tcpTransport) watchIdle() {
	defer t.readers.Done()
	every := time.Duration(idleLook.Load())
	timer := time.NewTimer(every)
	defer timer.Stop()
	var conns []*tcpConn
	for quiet := 0; ; {
		select {
		case <-timer.C:
		case <-t.closing:
			return
		}
		conns = t.appendConns(conns[:0])
		if t.lookIdle(conns, true) {
			quiet = 0
		} else if quiet++; quiet >= 2 {
			t.watching.Store(false)
			// A connection that went idle after this look and saw
			// watching still set started no watcher: look again.
			if !t.lookIdle(t.appendConns(conns[:0]), false) || !t.watching.CompareAndSwap(false, true) {
				return
			}
			quiet = 0
		}
		clear(conns)
		timer.Reset(every)
	}
}

// lookIdle reports whether any of conns is idle; with start, it gives a
// reader to those that were idle at the last look too, in the same idle
// run.
func (t *tcpTransport) lookIdle(conns []*tcpConn, start bool) (any bool) {
	for _, c := range conns {
		c.mu.Lock()
		if c.err == nil && c.reader == readerNone {
			any = true
			if start {
				if c.idleRun == c.idleSeen {
					c.startReader()
				}
				c.idleSeen = c.idleRun
			}
		}
		c.mu.Unlock()
	}
	return any
}

// appendConns appends the transport's live connections to conns.
func (t *tcpTransport) appendConns(conns []*tcpConn) []*tcpConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return conns
	}
	if t.cur != nil {
		conns = append(conns, t.cur)
	}
	for c := range t.draining {
		conns = append(conns, c)
	}
	return conns
}

// beginReading reports whether the caller of call, which register made the
// reader, still is: then it must read (readOwn) or stop (stopReading).
// Another caller that registered meanwhile may have given the reading to a
// goroutine (see register).
func (c *tcpConn) beginReading(call *pendingCall) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readerCall != call {
		return false
	}
	c.readerCall = nil
	return true
}

// stopReading ends a caller's turn as the reader: a reader goroutine takes
// over if calls are still pending.
func (c *tcpConn) stopReading() {
	c.mu.Lock()
	switch {
	case c.err != nil:
		c.reader = readerNone
	case len(c.pending) == 0:
		c.idle()
	default:
		c.startReader()
	}
	c.mu.Unlock()
}

// readOwn reads the connection's replies, delivering others' as the
// reader goroutine would, until the reply of call (seq) is in, and returns
// its outcome; then a reader goroutine takes over if calls are still
// pending. The caller of the only outstanding call thus reads its own
// reply, with no goroutine in between.
//
// When ctx ends while it waits between messages, the call is abandoned
// (its reply will be read and dropped) and fails as may-have-executed, as
// it would waiting for another reader. In the middle of a message the
// reading goes on for replyGrace, then the connection is broken (a peer
// that stalls there would hold the caller).
func (c *tcpConn) readOwn(ctx context.Context, req *Request, seq uint64, call *pendingCall) error {
	var stop func() bool
	if ctx.Done() != nil {
		c.readerCtx, c.graceEnd = ctx, time.Time{}
		stop = context.AfterFunc(ctx, c.interrupt)
	}
	ended := c.readUntil(ctx, call)
	if stop != nil {
		stop() // if its interrupt runs anyway, the next reader clears its deadline
		c.readerCtx = nil
	}
	if ended && call.take() {
		// Taken before a reader goroutine takes over: one that took the
		// call first would hold us, with no grace, for as long as the
		// reply it decodes stalls.
		c.abandon(seq)
		c.stopReading() // the last touch of the reader's state
		return semantics.MaybeExecuted(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, ctx.Err()))
	}
	c.stopReading() // the last touch of the reader's state
	// The reply is in, or the connection failed, or a failed write did not
	// send the request (they completed the call, without reading).
	return <-call.done
}

// readUntil reads for readOwn until call is completed (then its outcome
// waits in call.done) or, with ended, until ctx ended between messages.
func (c *tcpConn) readUntil(ctx context.Context, call *pendingCall) (ended bool) {
	for {
		if len(call.done) > 0 {
			return false
		}
		// Between messages: a caller whose ctx ended stops here, even with
		// the start of the next message buffered. Read now, that message
		// would have only what is left of the caller's grace to come whole,
		// and the connection would fail with it; a reader goroutine reads
		// it with no deadline.
		if ctx.Err() != nil {
			return true
		}
		if c.br.Buffered() == 0 {
			ended, err := c.awaitMessage(ctx)
			if ended {
				return true
			}
			if err != nil {
				c.fail(err)
				return false
			}
		}
		if !c.readOne() {
			return false
		}
	}
}

// awaitMessage waits until the stream has bytes to read, or ctx ends
// (ended): a deadline set in the past by ctx's end interrupts the wait with
// nothing read, and nothing is lost. Another error is the stream's.
func (c *tcpConn) awaitMessage(ctx context.Context) (ended bool, err error) {
	for {
		if ctx.Err() != nil {
			return true, nil
		}
		c.waiting = true
		_, err = c.br.Peek(1)
		c.waiting = false
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return false, err
		}
		// A past deadline, set by this ctx (the check above tells) or by a
		// caller who read before and whose ctx ended late: clear it, then
		// look at ctx again, which is done before its interrupt runs.
		c.nc.SetReadDeadline(time.Time{})
	}
}

// aLongTimeAgo is a read deadline in the past: a read waiting on the
// connection returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// deadlineReader is the connection as its reader reads it. Read deadlines
// are set only to interrupt a reading caller whose ctx ended (see
// awaitMessage): between messages its wait ends; in the middle of a
// message the reading goes on, for replyGrace; and a deadline left by a
// caller who read before is cleared and the read retried.
type deadlineReader struct{ c *tcpConn }

func (r deadlineReader) Read(p []byte) (int, error) {
	c := r.c
	for {
		n, err := c.nc.Read(p)
		if n > 0 || err == nil || c.waiting || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if c.readerCtx == nil || c.readerCtx.Err() == nil {
			c.nc.SetReadDeadline(time.Time{}) // not ours to honour
			// The ctx may have ended since, and its interrupt may be what
			// was just cleared: look again (ctx's Err is set before its
			// interrupt runs), or the caller reads on with no deadline.
			if c.readerCtx == nil || c.readerCtx.Err() == nil {
				continue
			}
		}
		// The caller's ctx ended in the middle of a message: the message
		// gets replyGrace to come whole. A past deadline before then (the
		// caller's interrupt run after the grace began, or one left by an
		// earlier caller) does not cut it short.
		if c.graceEnd.IsZero() {
			c.graceEnd = time.Now().Add(replyGrace)
		}
		if time.Now().Before(c.graceEnd) {
			c.nc.SetReadDeadline(c.graceEnd)
			continue
		}
		return n, fmt.Errorf("rpc: a reply stalled after its reader's caller gave up (%w): %w", c.readerCtx.Err(), err)
	}
}

// readOne reads one message: a reply, which it delivers to its call, or
// the server's shutdown notice. It reports false when the connection
// ended (it was failed, or closed once drained).
func (c *tcpConn) readOne() bool {
	var resp wireResponse
	if err := c.dec.Decode(&resp); err != nil {
		c.fail(err)
		return false
	}
	if resp.Seq == goAwaySeq && resp.ServiceMethod == goAwayMethod {
		if err := c.dec.DecodeValue(reflect.Value{}); err != nil {
			c.fail(err)
			return false
		}
		c.goAway()
		return !c.closeIfDrained()
	}
	c.mu.Lock()
	c.answered = true
	call := c.pending[resp.Seq]
	delete(c.pending, resp.Seq)
	// Taken under the lock, as fail takes them: a call completed by
	// another party may be pooled and reused at once.
	if call != nil && !call.take() {
		call = nil // its caller gave up on it
	}
	c.mu.Unlock()

	var callErr, streamErr error
	switch {
	case call == nil:
		streamErr = c.dec.DecodeValue(reflect.Value{})
	case resp.Error != "" || resp.Code != CodeNone:
		streamErr = c.dec.DecodeValue(reflect.Value{})
		callErr = DecodeError(resp.Code, resp.Error)
		if resp.Code == CodeTooLarge && streamErr == nil {
			// The server closes the connection after this answer; stop
			// using it now rather than lose the next call to the race.
			c.goAway()
		}
	default:
		callErr, streamErr = c.decodeReply(&resp, call.reply)
	}
	if call != nil {
		callErr = acceptReplyMetadata(&resp, callErr) // metadata.go
		if call.md != nil {
			call.md.Header, call.md.Trailer = resp.Header, resp.Trailer
		}
		call.done <- callErr
	}
	if streamErr != nil {
		c.fail(streamErr)
		return false
	}
	return !c.closeIfDrained()
}

// decodeReply reads the body of a successful response into reply. The
// method ran: a reply that cannot be used is its own class, never retried.
func (c *tcpConn) decodeReply(resp *wireResponse, reply any) (callErr, streamErr error) {
	rv := reflect.ValueOf(reply)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		// gob would refuse before reading, leaving the body on the stream.
		if err := c.dec.DecodeValue(reflect.Value{}); err != nil {
			return semantics.MaybeExecuted(fmt.Errorf("rpc: reading reply of %s: %w", resp.ServiceMethod, err)), err
		}
		return semantics.Unusable(fmt.Errorf("rpc: %s ran, but its reply was discarded: the reply argument must be a non-nil pointer, got %T", resp.ServiceMethod, reply)), nil
	}
	err := c.dec.Decode(reply)
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, ErrMessageTooLarge):
		return semantics.Unusable(fmt.Errorf("rpc: %s ran, but its reply is over this client's message limit (WithMaxMessageSize): %w", resp.ServiceMethod, err)), err
	case isStreamError(err):
		return semantics.MaybeExecuted(fmt.Errorf("rpc: reading reply of %s: %w", resp.ServiceMethod, err)), err
	}
	return semantics.Unusable(fmt.Errorf("rpc: %s ran, but its reply does not decode into %T: %w", resp.ServiceMethod, reply, err)), nil
}

// goAway stops new calls on c (the server is shutting down, or c broke):
// the next call dials again. Calls pending on a live c still get their
// answers; its reader closes it once none is left. Idempotent.
func (c *tcpConn) goAway() {
	t := c.t
	t.mu.Lock() // lock order: t.mu, then c.mu
	defer t.mu.Unlock()
	if t.cur == c {
		t.cur = nil
	}
	c.mu.Lock()
	c.draining = true
	live := c.err == nil
	c.mu.Unlock()
	if live {
		if t.draining == nil {
			t.draining = make(map[*tcpConn]struct{})
		}
		t.draining[c] = struct{}{}
	}
}

// closeIfDrained closes a connection that is going away once no call is
// pending on it, and reports whether it did. Only the reader calls it,
// between replies.
func (c *tcpConn) closeIfDrained() bool {
	c.mu.Lock()
	drained := c.draining && len(c.pending) == 0 && c.err == nil
	c.mu.Unlock()
	if drained {
		c.fail(errGoneAway)
	}
	return drained
}

var errGoneAway = errors.New("rpc: server went away")

// errUnasked ends a connection on which something came while no call was
// pending: the server's shutdown notice, its close, a reset, or bytes no
// call asked for.
var errUnasked = errors.New("rpc: connection ended: the server closed it, reset it, said it is going away or sent what no call asked for, while no call was pending")

// fail marks the connection broken, closes it and fails every pending call
// as may-have-executed, all with one failure group (a retry budget charges
// one lost connection once). Later calls redial.
func (c *tcpConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if !c.answered && isTLSAlert(err) {
		err = tlsRefusal(c.t.addr, err) // the server refused the connection: nothing on it ran
	}
	c.err = err
	// The pending calls are taken here, under the lock, and only those
	// taken are touched afterwards: a call that another party completes
	// (the writer, as not sent, which first takes it out of the map) may be
	// back in its pool and reused by an unrelated call as soon as its
	// caller has read its done channel.
	var taken []*pendingCall
	for _, call := range c.pending {
		if call.take() {
			taken = append(taken, call)
		}
	}
	c.pending = make(map[uint64]*pendingCall)
	c.mu.Unlock()

	if len(taken) > 0 {
		callErr := err
		if !isTLSRefusal(err) {
			callErr = semantics.Grouped(semantics.MaybeExecuted(fmt.Errorf("%w: %w", ErrConnLost, err)), new(semantics.FailureGroup))
		}
		for _, call := range taken {
			call.done <- callErr
		}
	}
	c.nc.Close()
	t := c.t
	t.mu.Lock()
	if t.cur == c {
		t.cur = nil
	}
	delete(t.draining, c)
	t.mu.Unlock()
}

// coalescer is the write side of one stream: messages are encoded into its
// buffer under its lock, and leave in as few writes as possible without
// waiting for company. A caller that finds no write in progress writes the
// buffer itself at once (a lone message leaves at once); callers that come
// while a write is in progress leave their messages in the buffer and go on,
// and the writing caller writes them all together when its write returns,
// and again until the buffer is empty. The grpc-go transport's "loopy
// writer" batches the same way (flush when nothing more is queued), with a
// dedicated goroutine where this one borrows the caller's.
//
// Callers woken one after another on the same processor would each find
// the stream idle and write alone. So a writer that knows others are busy
// on the stream (company: other calls outstanding on the connection, other
// requests running on the server's) yields the processor once before it
// writes, and the messages they queue meanwhile leave with its own. A lone
// call does not yield: it writes at once.
//
// Each message may carry a tag (T); when a write fails, the tags of the
// messages it did not write whole are returned, so that their calls get
// the right verdict. After a failed write nothing more is written.
type coalescer[T any] struct {
	w io.Writer

	mu      sync.Mutex // protects following
	cur     *batch[T]  // where messages are encoded; written next
	spare   *batch[T]  // the batch being written; only the writer touches it
	writing bool       // a caller is writing (spare, then cur until empty)
	err     error      // the first failed write: nothing is written after it
	waiting int        // callers waiting on written
	written sync.Cond  // broadcast after each write, when callers wait

	// onWritten, if set, is called for the tag of each message once the
	// write that carried it is over (whole tells whether it was written
	// whole; werr is the write's error), before the write ends.
	// After a failed write it is called for the messages queued behind,
	// which are never written.
	onWritten func(tag T, whole bool, werr error)
	// onFailed, if set, is told of a write that failed on the goroutine
	// that writes the messages a caller left behind (see unlockAndFlush);
	// a caller's own failed write is returned to it instead.
	onFailed func(werr error)
}

// batch is a buffer of whole messages and the tags of those that carry one.
type batch[T any] struct {
	buf  bytes.Buffer
	tags []tagAt[T]
}

// tagAt is a message's tag and the offset just past the message.
type tagAt[T any] struct {
	end int
	tag T
}

// maxQueuedBytes bounds what one stream buffers while a write is in
// progress: beyond it, the next message waits for the write (back pressure
// on a peer that reads slowly, as a blocking write gives).
const maxQueuedBytes = 1 << 20

func newCoalescer[T any](w io.Writer) *coalescer[T] {
	c := &coalescer[T]{w: w, cur: new(batch[T]), spare: new(batch[T])}
	c.written.L = &c.mu
	return c
}

// Write appends p to the current batch: the gob encoder's writer. The lock
// must be held.
func (c *coalescer[T]) Write(p []byte) (int, error) { return c.cur.buf.Write(p) }

// lock takes the lock to encode a message, first waiting while a write is
// in progress and too much is queued behind it.
func (c *coalescer[T]) lock() {
	c.mu.Lock()
	for c.full() {
		c.waitWrite()
	}
}

// full reports whether a message must wait for room. The lock must be held.
func (c *coalescer[T]) full() bool {
	return c.writing && c.err == nil && c.cur.buf.Len() >= maxQueuedBytes
}

// lockCtx is lock for a caller whose wait for room ends with ctx: it
// reports false, without the lock, if ctx ended first.
func (c *coalescer[T]) lockCtx(ctx context.Context) bool {
	c.mu.Lock()
	if !c.full() {
		return true
	}
	if ctx.Done() == nil {
		for c.full() {
			c.waitWrite()
		}
		return true
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.written.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for c.full() {
		if ctx.Err() != nil {
			c.mu.Unlock()
			return false
		}
		c.waitWrite()
	}
	return true
}

// waitWrite waits for the next write to end. The lock must be held.
func (c *coalescer[T]) waitWrite() {
	c.waiting++
	c.written.Wait()
	c.waiting--
}

// buf returns the current batch's buffer, for encoders that must cut a
// message they could not finish. The lock must be held.
func (c *coalescer[T]) buf() *bytes.Buffer { return &c.cur.buf }

// tag records tag for the message that ends the buffer. The lock must be
// held.
func (c *coalescer[T]) tag(tag T) {
	c.cur.tags = append(c.cur.tags, tagAt[T]{end: c.cur.buf.Len(), tag: tag})
}

// failed returns the error of the write that failed, or nil. The lock must
// be held.
func (c *coalescer[T]) failed() error { return c.err }

// unlockAndFlush releases the lock; unless a write is in progress (its
// writer will take the buffer), it first writes the buffer; with company,
// after yielding once. It returns the error of a write that failed; nothing
// is written after it.
//
// Messages queued by others while this caller wrote are not its own: when
// onFailed is set, a goroutine of their own writes them (and whatever
// comes meanwhile), so that this caller is not held by writes of others'
// messages, which under steady load never end, or hang on a peer that
// stopped reading. Without onFailed the caller writes until the buffer is
// empty.
func (c *coalescer[T]) unlockAndFlush(company bool) error {
	if c.writing || c.err != nil {
		c.mu.Unlock()
		return nil
	}
	c.writing = true
	if company {
		// Other calls are about to write: let them queue their messages
		// first (they find a write in progress and go on).
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
	if c.cur.buf.Len() > 0 {
		if werr := c.writeBatch(); werr != nil {
			c.mu.Unlock()
			return werr
		}
		if c.cur.buf.Len() > 0 && c.onFailed != nil {
			c.mu.Unlock()
			go c.flushRest()
			return nil
		}
	}
	for c.cur.buf.Len() > 0 {
		if werr := c.writeBatch(); werr != nil {
			c.mu.Unlock()
			return werr
		}
	}
	c.writing = false
	c.mu.Unlock()
	return nil
}

// flushRest writes what others queued, for a caller that wrote its own
// batch, until the buffer is empty; a failed write goes to onFailed.
// writing is set: this goroutine is the writer.
func (c *coalescer[T]) flushRest() {
	c.mu.Lock()
	for c.cur.buf.Len() > 0 {
		if werr := c.writeBatch(); werr != nil {
			c.mu.Unlock()
			c.onFailed(werr)
			return
		}
	}
	c.writing = false
	c.mu.Unlock()
}

// writeBatch writes the current batch; the lock must be held, writing set
// and the batch not empty. The lock is released during the write and held
// again on return. A failed write is recorded, the messages queued behind it
// are told they were not written, and writing ends.
func (c *coalescer[T]) writeBatch() error {
	b := c.cur
	c.cur, c.spare = c.spare, b
	c.mu.Unlock()
	n, werr := c.w.Write(b.buf.Bytes())
	if c.onWritten != nil {
		for _, t := range b.tags {
			c.onWritten(t.tag, werr == nil || t.end <= n, werr)
		}
	}
	b.reset()
	c.mu.Lock()
	if c.waiting > 0 {
		c.written.Broadcast()
	}
	if werr != nil {
		c.err = werr
		if c.onWritten != nil {
			for _, t := range c.cur.tags {
				c.onWritten(t.tag, false, werr)
			}
		}
		c.cur.reset()
		c.writing = false
	}
	return werr
}

// waitUntil waits until done reports true; done must turn true by the end
// of a write in progress (an onWritten call, say).
func (c *coalescer[T]) waitUntil(done func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !done() && c.writing {
		c.waitWrite()
	}
}

// waitIdle waits until no write is in progress: after the stream is
// closed, until its writer (a caller's or the goroutine that writes what
// callers left) has given up.
func (c *coalescer[T]) waitIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.writing {
		c.waitWrite()
	}
}

// busy reports whether a write is in progress or messages wait for one.
func (c *coalescer[T]) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writing || c.cur.buf.Len() > 0
}

// writeErr returns the error of the write that failed, or nil.
func (c *coalescer[T]) writeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// flushNow writes everything queued and waits until it is written, by this
// caller or by the one writing now. It reports the failed write's error.
func (c *coalescer[T]) flushNow() error {
	c.mu.Lock()
	for c.writing {
		c.waitWrite()
	}
	if err := c.unlockAndFlush(false); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (b *batch[T]) reset() {
	clear(b.tags) // drop what the tags point to
	b.tags = b.tags[:0]
	b.buf.Reset()
	if b.buf.Cap() > maxKeptBuffer {
		b.buf = bytes.Buffer{}
	}
}
