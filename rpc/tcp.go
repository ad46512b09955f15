package rpc

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"reflect"
	"sync"
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
// failures are not-sent errors; after one, calls fail at once until the
// redial backoff has passed.
func (t *tcpTransport) conn(ctx context.Context) (*tcpConn, error) {
	t.mu.Lock()
	for {
		if t.closed {
			t.mu.Unlock()
			return nil, reject(ErrClientClosed, "%v", ErrClientClosed)
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
		if wait := time.Until(t.nextDial); wait > 0 {
			err := t.lastErr
			t.mu.Unlock()
			return nil, semantics.NotSent(fmt.Errorf("rpc: not connected to %s (redial in %v): %w",
				t.addr, wait.Round(time.Millisecond), err))
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
			t.mu.Unlock()
			return nil, semantics.NotSent(fmt.Errorf("rpc: dial %s: %w", t.addr, err))
		}
		if t.closed {
			t.mu.Unlock()
			nc.Close()
			return nil, reject(ErrClientClosed, "%v", ErrClientClosed)
		}
		t.delay, t.lastErr = 0, nil
		c := newTCPConn(t, nc)
		t.cur = c
		t.readers.Add(1)
		go c.readLoop()
	}
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
	t.mu.Unlock()
	if c != nil {
		c.fail(ErrClientClosed)
	}
	t.readers.Wait()
	return nil
}

// pendingCall is a call waiting for its reply.
type pendingCall struct {
	reply any
	done  chan error // buffered: the reader never blocks
}

var pendingPool = sync.Pool{New: func() any { return &pendingCall{done: make(chan error, 1)} }}

// tcpConn is one connection and its reader.
type tcpConn struct {
	t   *tcpTransport
	nc  net.Conn
	dec *gob.Decoder

	wmu sync.Mutex // protects w, enc
	w   *bufio.Writer
	enc *gob.Encoder

	mu      sync.Mutex // protects following
	pending map[uint64]*pendingCall
	seq     uint64
	err     error // why the connection broke; nil while it works
}

func newTCPConn(t *tcpTransport, nc net.Conn) *tcpConn {
	w := bufio.NewWriter(nc)
	return &tcpConn{
		t:       t,
		nc:      nc,
		dec:     gob.NewDecoder(bufio.NewReader(newFrameLimiter(nc, t.maxMsg))),
		w:       w,
		enc:     gob.NewEncoder(w),
		pending: make(map[uint64]*pendingCall),
	}
}

// RoundTrip implements Transport.
func (t *tcpTransport) RoundTrip(ctx context.Context, req *Request, reply any) error {
	if err := ctx.Err(); err != nil {
		return semantics.NotSent(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, err))
	}
	c, err := t.conn(ctx)
	if err != nil {
		return err
	}
	call := pendingPool.Get().(*pendingCall)
	call.reply = reply

	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		pendingPool.Put(call)
		return semantics.NotSent(fmt.Errorf("rpc: %s: %w: %v", req.ServiceMethod, ErrConnLost, err))
	}
	c.seq++
	seq := c.seq
	c.pending[seq] = call
	c.mu.Unlock()

	if err, cause := c.write(req, seq); err != nil {
		c.mu.Lock()
		_, mine := c.pending[seq]
		delete(c.pending, seq)
		c.mu.Unlock()
		// Fail the connection only now that this call is out of the
		// pending map: it was never sent, and must not get fail's
		// may-have-executed verdict.
		c.fail(cause)
		if mine {
			call.reply = nil
			pendingPool.Put(call)
			return err
		}
		// The reader failed the call concurrently; take its verdict.
		return c.finish(call)
	}

	done := ctx.Done()
	if done == nil { // a context that never ends: no select needed
		return c.finish(call)
	}
	select {
	case err := <-call.done:
		call.reply = nil
		pendingPool.Put(call)
		return err
	case <-done:
		c.mu.Lock()
		_, mine := c.pending[seq]
		delete(c.pending, seq)
		c.mu.Unlock()
		if mine {
			// Not pooled: the channel is clean, but keep it simple and safe.
			return semantics.MaybeExecuted(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, ctx.Err()))
		}
		// The reader owns the call and is decoding its reply right now. It
		// must finish before we return (it writes into reply), but a peer
		// may stall in the middle of the body: after a grace period, break
		// the connection so that the decode ends.
		grace := time.NewTimer(replyGrace)
		defer grace.Stop()
		select {
		case err := <-call.done:
			call.reply = nil
			pendingPool.Put(call)
			return err
		case <-grace.C:
			c.fail(fmt.Errorf("rpc: reply of %s stalled after the caller gave up: %w", req.ServiceMethod, ctx.Err()))
			err := c.finish(call)
			if cl := semantics.ClassOf(err); cl != semantics.ClassNotSent && cl != semantics.ClassMaybeExecuted {
				return err // the server's answer was complete after all
			}
			return semantics.MaybeExecuted(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, ctx.Err()))
		}
	}
}

// replyGrace is how long a call whose context has ended waits for the
// reply being decoded for it before it breaks the connection.
const replyGrace = 50 * time.Millisecond

func (c *tcpConn) finish(call *pendingCall) error {
	err := <-call.done
	call.reply = nil
	pendingPool.Put(call)
	return err
}

// write sends one request. An error is a not-sent error (or a rejection,
// for arguments that cannot be encoded): the server cannot have received
// the whole request. cause is then why the connection must be failed, which
// the caller does once it has taken the call out of the pending map: part
// of the request may already be on the wire.
func (c *tcpConn) write(req *Request, seq uint64) (err, cause error) {
	wr := wireRequest{ServiceMethod: req.ServiceMethod, Seq: seq, Sem: req.Header}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	defer func() {
		// gob panics on a nil pointer (and a GobEncoder may panic): a
		// bad argument, not a reason to leave wmu locked.
		if p := recover(); p != nil {
			cause = fmt.Errorf("rpc: encoding arguments of %s: %v", req.ServiceMethod, p)
			err = reject(nil, "%v", cause)
		}
	}()
	cause = c.enc.Encode(&wr)
	if cause == nil {
		if cause = c.enc.Encode(req.Args); cause != nil && !isNetError(cause) {
			cause = fmt.Errorf("rpc: encoding arguments of %s: %w", req.ServiceMethod, cause)
			return reject(nil, "%v", cause), cause
		}
	}
	if cause == nil {
		cause = c.w.Flush()
	}
	if cause != nil {
		return semantics.NotSent(fmt.Errorf("rpc: sending %s: %w", req.ServiceMethod, cause)), cause
	}
	return nil, nil
}

func (c *tcpConn) readLoop() {
	defer c.t.readers.Done()
	for {
		var resp wireResponse
		if err := c.dec.Decode(&resp); err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		call := c.pending[resp.Seq]
		delete(c.pending, resp.Seq)
		c.mu.Unlock()

		var callErr, streamErr error
		switch {
		case call == nil: // abandoned by a cancelled caller
			streamErr = c.dec.DecodeValue(reflect.Value{})
		case resp.Error != "" || resp.Code != codeNone:
			streamErr = c.dec.DecodeValue(reflect.Value{})
			callErr = DecodeError(resp.Code, resp.Error)
			if resp.Code == codeTooLarge && streamErr == nil {
				// The server closes the connection after this answer; stop
				// using it now rather than lose the next call to the race.
				streamErr = ErrMessageTooLarge
			}
		default:
			if err := c.dec.Decode(call.reply); err != nil {
				if isStreamError(err) {
					streamErr = err
					callErr = semantics.MaybeExecuted(fmt.Errorf("rpc: reading reply of %s: %w", resp.ServiceMethod, err))
				} else {
					callErr = &executedError{fmt.Errorf("rpc: decoding reply of %s: %w", resp.ServiceMethod, err)}
				}
			}
		}
		if call != nil {
			call.done <- callErr
		}
		if streamErr != nil {
			c.fail(streamErr)
			return
		}
	}
}

// fail marks the connection broken, closes it and fails every pending call
// as may-have-executed. Later calls redial.
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
	c.mu.Unlock()

	c.nc.Close()
	c.t.mu.Lock()
	if c.t.cur == c {
		c.t.cur = nil
	}
	c.t.mu.Unlock()
	for _, call := range pending {
		call.done <- semantics.MaybeExecuted(fmt.Errorf("%w: %w", ErrConnLost, err))
	}
}

// executedError is a reply that arrived but could not be decoded: the
// method ran, so it counts as an application error and is not retried.
type executedError struct{ err error }

func (e *executedError) Error() string        { return e.err.Error() }
func (e *executedError) Unwrap() error        { return e.err }
func (e *executedError) Is(target error) bool { return target == semantics.ErrApplication }
