package rpc

import (
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
	"reflect"
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

	mu       sync.Mutex // protects following
	cur      *tcpConn
	dialing  chan struct{} // closed when the dial in progress ends
	lastErr  error
	nextDial time.Time
	delay    time.Duration
	closed   bool
	draining map[*tcpConn]struct{} // replaced after the server's notice; ended when their calls are

	readers sync.WaitGroup // one reader goroutine per connection
}

var _ Transport = (*tcpTransport)(nil)

// NewStreamTransport returns a transport speaking net/rpc's gob wire over
// connections made by dial: the transport behind Dial, for any stream (TLS,
// net.Pipe, a Unix socket). It does not connect until the first call, and
// calls dial again after a connection is lost. Options: WithRedialBackoff,
// WithMaxMessageSize.
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
		t.readers.Add(1)
		go c.readLoop()
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
	c := t.cur
	t.cur = nil
	// Connections replaced after the server's notice, with calls still
	// pending on them, are failed too: their readers end with them.
	draining := t.draining
	t.draining = nil
	t.mu.Unlock()
	if c != nil {
		c.fail(ErrClientClosed)
	}
	for d := range draining {
		d.fail(ErrClientClosed)
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
	taken atomic.Bool
}

// take claims the right to complete the call.
func (p *pendingCall) take() bool { return p.taken.CompareAndSwap(false, true) }

// Calls are pooled only once their done channel was read: then neither the
// reader nor fail holds them any more.
var pendingPool = sync.Pool{New: func() any { return &pendingCall{done: make(chan error, 1)} }}

func getPending(reply any) *pendingCall {
	p := pendingPool.Get().(*pendingCall)
	p.reply = reply
	p.taken.Store(false)
	return p
}

// wait receives the call's outcome from whoever took it, and pools it.
func (p *pendingCall) wait() error {
	err := <-p.done
	p.reply = nil
	pendingPool.Put(p)
	return err
}

// tcpConn is one connection and its reader.
type tcpConn struct {
	t   *tcpTransport
	nc  net.Conn
	dec *gob.Decoder

	wmu sync.Mutex   // protects buf, enc
	buf bytes.Buffer // enc writes here; a request is encoded whole before it is written
	enc *gob.Encoder

	mu       sync.Mutex // protects following
	pending  map[uint64]*pendingCall
	seq      uint64
	err      error // why the connection broke; nil while it works
	draining bool  // the server said it is going away: no new calls
	answered bool  // a response has been read
}

func newTCPConn(t *tcpTransport, nc net.Conn) *tcpConn {
	c := &tcpConn{
		t:       t,
		nc:      nc,
		dec:     gob.NewDecoder(newFrameLimiter(nc, t.maxMsg)),
		pending: make(map[uint64]*pendingCall),
	}
	c.enc = gob.NewEncoder(&c.buf)
	return c
}

// RoundTrip implements Transport.
func (t *tcpTransport) RoundTrip(ctx context.Context, req *Request, reply any) error {
	if err := ctx.Err(); err != nil {
		return semantics.NotSent(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, err))
	}
	call := getPending(reply)
	call.md = req.ReplyMetadata
	c, seq, err := t.register(ctx, req, call)
	if err != nil {
		call.reply = nil
		pendingPool.Put(call)
		return err
	}
	if err, broken := c.write(req, seq); err != nil {
		// Out of the pending map before the connection is failed: this call
		// was never sent, and must not get fail's may-have-executed verdict.
		c.forget(seq)
		mine := call.take()
		if broken != nil {
			c.fail(broken)
		}
		if !mine {
			// The reader took the call first, with the server's answer
			// (a request refused as too large is answered before it is
			// all written): that answer stands. Or a failure of the
			// connection took it: this request was not sent all the same,
			// and that is its verdict.
			if werr := call.wait(); semantics.ClassOf(werr) != semantics.ClassMaybeExecuted {
				return werr
			}
		}
		return err // not pooled when it was ours (see pendingPool)
	}
	done := ctx.Done()
	if done == nil { // a context that never ends: no select needed
		return call.wait()
	}
	select {
	case err := <-call.done:
		call.reply = nil
		pendingPool.Put(call)
		return err
	case <-done:
	}
	if call.take() {
		c.forget(seq)
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
		call.reply = nil
		pendingPool.Put(call)
		return err
	case <-grace.C:
		c.fail(fmt.Errorf("rpc: reply of %s stalled after the caller gave up: %w", req.ServiceMethod, ctx.Err()))
		err := call.wait()
		if cl := semantics.ClassOf(err); cl != semantics.ClassNotSent && cl != semantics.ClassMaybeExecuted {
			return err // the server's answer was complete after all
		}
		return semantics.MaybeExecuted(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, ctx.Err()))
	}
}

// register finds a connection that takes new calls and enters call in its
// pending map. A connection that broke or is going away since conn returned
// it is replaced by a fresh one.
func (t *tcpTransport) register(ctx context.Context, req *Request, call *pendingCall) (*tcpConn, uint64, error) {
	for tries := 0; ; tries++ {
		c, err := t.conn(ctx, req.WaitForReady)
		if err != nil {
			return nil, 0, err
		}
		c.mu.Lock()
		if c.err == nil && !c.draining {
			c.seq++
			seq := c.seq
			c.pending[seq] = call
			c.mu.Unlock()
			return c, seq, nil
		}
		cerr := c.err
		c.mu.Unlock()
		// fail or goAway marked c but has not replaced it yet: do it here,
		// so that conn dials afresh.
		c.goAway()
		if tries >= 3 {
			return nil, 0, semantics.NotSent(fmt.Errorf("rpc: %s: %w: %v", req.ServiceMethod, ErrConnLost, cerr))
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

// replyGrace is how long a call whose context has ended waits for the
// reply being decoded for it before it breaks the connection.
const replyGrace = 50 * time.Millisecond

// write encodes the request whole, then writes it. An error means the
// server did not get the request: arguments that cannot be encoded fail
// this call alone (not sent, permanent) and leave the connection as it
// was; a failed write is not sent either, and broken says why the
// connection must be failed, which the caller does once the call is out of
// the pending map.
func (c *tcpConn) write(req *Request, seq uint64) (err, broken error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.buf.Reset()
	wr := wireRequest{ServiceMethod: req.ServiceMethod, Seq: seq, Sem: req.Header, Timeout: int64(req.Timeout), Metadata: req.Metadata}
	if err := c.enc.Encode(&wr); err != nil { // cannot happen for this fixed type
		return semantics.NotSent(fmt.Errorf("rpc: encoding request header of %s: %w", req.ServiceMethod, err)), err
	}
	hdrEnd := c.buf.Len()
	if needsTrial(req.Args) {
		if _, err := trialEncode(req.Args); err != nil {
			c.buf.Truncate(lastMessageStart(c.buf.Bytes())) // the header value; its type definitions stay
			if c.buf.Len() > 0 {
				_, broken = c.nc.Write(c.buf.Bytes())
			}
			return semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: encoding arguments of %s: %w (call not sent)", req.ServiceMethod, err))), broken
		}
	}
	if err := encodeValue(c.enc, req.Args); err != nil {
		// Nothing of this request goes out. But the type definitions gob
		// wrote (whole messages, before the header value and after it) it
		// now counts as sent: they must reach the server, which takes type
		// definitions anywhere between values.
		cutMessage(&c.buf, lastMessageStart(c.buf.Bytes()[:hdrEnd]), hdrEnd)
		if c.buf.Len() > 0 {
			_, broken = c.nc.Write(c.buf.Bytes())
		}
		return semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: encoding arguments of %s: %w (call not sent)", req.ServiceMethod, err))), broken
	}
	if _, err := c.nc.Write(c.buf.Bytes()); err != nil {
		return semantics.NotSent(fmt.Errorf("rpc: sending %s: %w", req.ServiceMethod, err)), err
	}
	if c.buf.Cap() > maxKeptBuffer {
		c.buf = bytes.Buffer{} // enc keeps writing to &c.buf, which stays the same variable
	}
	return nil, nil
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

func (c *tcpConn) readLoop() {
	defer c.t.readers.Done()
	for {
		var resp wireResponse
		if err := c.dec.Decode(&resp); err != nil {
			c.fail(err)
			return
		}
		if resp.Seq == goAwaySeq && resp.ServiceMethod == goAwayMethod {
			if err := c.dec.DecodeValue(reflect.Value{}); err != nil {
				c.fail(err)
				return
			}
			c.goAway()
			if c.closeIfDrained() {
				return
			}
			continue
		}
		c.mu.Lock()
		c.answered = true
		call := c.pending[resp.Seq]
		delete(c.pending, resp.Seq)
		c.mu.Unlock()
		if call != nil && !call.take() {
			call = nil // its caller gave up on it
		}

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
			if call.md != nil {
				call.md.Header, call.md.Trailer = resp.Header, resp.Trailer
			}
			call.done <- callErr
		}
		if streamErr != nil {
			c.fail(streamErr)
			return
		}
		if c.closeIfDrained() {
			return
		}
	}
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
	c.err = err
	pending := c.pending
	c.pending = make(map[uint64]*pendingCall)
	answered := c.answered
	c.mu.Unlock()

	c.nc.Close()
	t := c.t
	t.mu.Lock()
	if t.cur == c {
		t.cur = nil
	}
	delete(t.draining, c)
	t.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	var callErr error
	if !answered && isTLSAlert(err) {
		// The peer refused the TLS handshake: no request was read.
		callErr = semantics.Permanent(semantics.NotSent(fmt.Errorf("%w: %w", ErrConnLost, err)))
	} else {
		callErr = semantics.Grouped(semantics.MaybeExecuted(fmt.Errorf("%w: %w", ErrConnLost, err)), new(semantics.FailureGroup))
	}
	for _, call := range pending {
		if call.take() {
			call.done <- callErr
		}
	}
}
