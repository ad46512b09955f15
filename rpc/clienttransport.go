package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

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
	dialing  flight[struct{}] // the dial in progress: one at a time, the others wait for it
	lastErr  error
	nextDial time.Time
	pace     *backoff.ExponentialBackOff // the wait before the next dial after a failed one (see ended)
	closed   bool
	draining map[*tcpConn]struct{} // replaced after the server's notice; ended when their calls are

	readers   sync.WaitGroup // reader goroutines, and the idle watcher
	idleWatch watcher        // gives idle connections a reader (idlewatch.go)
	closing   chan struct{}  // closed by Close
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
		pace:      newRedialPacer(o.redialMin, o.redialMax),
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
		if run := t.dialing.running(); run != nil {
			t.mu.Unlock()
			if !run.wait(ctx) {
				return nil, semantics.NotSent(fmt.Errorf("rpc: waiting for dial of %s: %w", t.addr, ctx.Err()))
			}
			t.mu.Lock()
			continue // the dial's outcome is in t (cur, or the pacing): look again
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
		run, _ := t.dialing.join() // nothing in flight (above): this caller leads
		t.mu.Unlock()

		nc, err := t.dial(ctx)

		t.mu.Lock()
		t.dialing.land(run, struct{}{}, err)
		if err != nil {
			if ctx.Err() == nil { // a caller's cancel says nothing about the server
				t.lastErr = err
				t.nextDial = time.Now().Add(t.pace.NextBackOff())
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
		t.lastErr = nil // the pacing is reset once the server speaks (spoke), not here
		c := newTCPConn(t, nc)
		t.cur = c
		c.mu.Lock()
		if c.probe == nil {
			// Callers cannot read this stream themselves (see readOwn): a
			// reader goroutine reads it for as long as it lives.
			c.startReader()
		} else {
			// Nobody reads it until a call comes, which may be never (a
			// connection dialled by WithEagerDial): the idle watcher must
			// know of it, as of any connection that went idle, or a
			// server's shutdown notice on it is not read.
			c.idle()
			c.idleAt = 0 // no reply read yet: the first call looks at it (see register)
		}
		c.mu.Unlock()
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
		c.out.WaitIdle()
	}
	for d := range draining {
		d.fail(ErrClientClosed)
		d.out.WaitIdle()
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
	// The caller's interrupt ends its own write or read when ctx ends, and
	// nothing else (see interruptCaller). It is armed only once the caller
	// is to write or read itself: a caller that only waits for its reply
	// returns when ctx ends without one.
	var intr *callerInterrupt
	var arm func()
	if ctx.Done() != nil {
		intr = &callerInterrupt{ctx: ctx, c: c, seq: seq}
		arm = intr.arm
		defer intr.disarm()
	}
	if err := c.write(ctx, req, seq, call, arm); err != nil {
		// This call was never sent: out of the pending map, so that a
		// failure of the connection does not give it fail's
		// may-have-executed verdict. (A request that was queued is
		// answered through call.done, below: by the server, by written as
		// not sent, or by fail.)
		c.forget(seq)
		if reads && c.beginReading(seq) {
			c.stopReading()
		}
		if !call.take() {
			// A failure of the connection took it first: this request was
			// not sent all the same, and that is its verdict.
			call.wait()
		}
		return err // not pooled when it was ours (see getPending)
	}
	if reads && c.beginReading(seq) {
		if intr != nil {
			intr.arm()
		}
		return intr.explain(req.ServiceMethod, c.settle(call, c.readOwn(ctx, req, seq, call)))
	}
	done := ctx.Done()
	if done == nil { // a context that never ends: no select needed
		return c.settle(call, <-call.done)
	}
	select {
	case err := <-call.done:
		return intr.explain(req.ServiceMethod, c.settle(call, err))
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
		c.out.WaitUntil(func() bool { return !call.inWrite.Load() })
	}
	if call.unsent.Load() && errors.Is(err, ErrConnLost) && semantics.ClassOf(err) == semantics.ClassMaybeExecuted {
		err = semantics.NotSent(fmt.Errorf("%w: request not sent: %w", ErrConnLost, c.out.Err()))
	}
	call.reply, call.md = nil, nil // nothing of the caller's stays in the pool
	call.pool.Put(call)
	return err
}

// register finds a connection that takes new calls and enters call in its
// pending map. A connection that broke or is going away since conn returned
// it is replaced by a fresh one. reads reports that nobody was reading the
// connection: the caller is chosen to read, and, if beginReading says it
// still is, must read (readOwn) or stop (stopReading).
//
// A connection that expects no reply must hold nothing, so anything its
// socket holds (the server's shutdown notice, its close, a reset) says it
// must not be used (R24): it is closed, and the call goes to a fresh
// connection. That holds whoever reads it: nobody, or the reader goroutine
// the idle watcher gave it, which may not have woken yet to what came. The
// look costs one system call, which does not read; it is skipped on a
// connection nobody reads whose last reply was read less than lookAfter
// ago (a caller calling again at once, the common case under load).
func (t *tcpTransport) register(ctx context.Context, req *Request, call *pendingCall) (c *tcpConn, seq uint64, reads bool, err error) {
	for tries := 0; ; tries++ {
		c, err := t.conn(ctx, req.WaitForReady)
		if err != nil {
			return nil, 0, false, err
		}
		c.mu.Lock()
		if c.life != lifeLive {
			cerr := c.err
			c.mu.Unlock()
			if isTLSRefusal(cerr) {
				return nil, 0, false, cerr // a new connection would be refused too
			}
			// fail or goAway marked c but has not replaced it yet: do it
			// here, so that conn dials afresh.
			c.goAway()
			if tries >= 3 {
				return nil, 0, false, semantics.NotSent(fmt.Errorf("rpc: %s: %w: %v", req.ServiceMethod, ErrConnLost, cerr))
			}
			continue
		}
		if c.unusable() {
			// Closed outright: nobody waits on it, and what came need not
			// be read (a reader would wait for ever on bytes that are not
			// a whole message). The server sees the close, as it would
			// once its notice was read. Marked going away first, so that
			// no other call registers on it before fail ends it.
			c.setLife(lifeDraining)
			c.mu.Unlock()
			c.fail(errUnasked)
			if tries >= 3 { // a server that sends before it is asked, each time
				return nil, 0, false, semantics.NotSent(fmt.Errorf("rpc: %s: %w", req.ServiceMethod, errUnasked))
			}
			continue
		}
		c.seq++
		seq := c.seq
		switch c.read {
		case readNone, readNoneSeen:
			c.setRead(readChosen)
			c.readerSeq, reads = seq, true
		case readChosen:
			// The caller who is to read has not begun: it may be held
			// writing its request (behind a full write buffer, to a
			// server that stopped reading until its replies are read).
			// This call's reply must not wait for that, or neither side
			// reads: a reader goroutine reads from now on, and that
			// caller waits for its reply as others do.
			c.startReader()
		}
		c.pending[seq] = call
		c.mu.Unlock()
		return c, seq, reads, nil
	}
}

// unusable reports whether c, live, holds what no call asked for: a
// connection with no call pending must hold nothing. c.mu must be held.
func (c *tcpConn) unusable() bool {
	switch {
	case c.probe == nil || len(c.pending) > 0:
		return false
	case c.read == readNone || c.read == readNoneSeen:
		return c.br.Buffered() > 0 || (c.idleLongEnough() && c.probe() != probeEmpty)
	case c.read == readGoroutine:
		// The idle watcher's goroutine reads it: its buffer is the
		// goroutine's, but the socket shows a close, a reset or a notice
		// the goroutine has not taken yet.
		return c.probe() != probeEmpty
	}
	return false
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

// newRedialPacer returns the backoff between redials: from min, doubling
// to max, each wait drawn within half of it either way (so that clients
// cut off together do not come back together), never giving up.
func newRedialPacer(min, max time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min),
		backoff.WithMaxInterval(max),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0),
	)
}

// ended paces the next dial after c ended without the server ever
// speaking on it, soon after it was dialled (within redialMax): a server
// that accepts and at once closes, resets or sends nothing, is dialled as
// one that refuses is, with backoff, whatever the calls do (a not-sent
// call is retried for free, so nothing else would pace them). A
// connection that served calls, or lived long, redials at once. t.mu must
// be held.
func (t *tcpTransport) ended(c *tcpConn) {
	if time.Since(c.born) >= t.redialMax || t.closed {
		return
	}
	t.lastErr = fmt.Errorf("connection ended before the server answered: %w", c.err)
	t.nextDial = time.Now().Add(t.pace.NextBackOff())
}

// spoke resets the redial pacing: a connection of t read a message from
// the server.
func (t *tcpTransport) spoke() {
	t.mu.Lock()
	t.pace.Reset()
	t.mu.Unlock()
}

// callerInterrupt is a caller's interrupt (tcpConn.interruptCaller),
// armed when the caller first writes or reads itself, disarmed when its
// RoundTrip returns. Only its caller touches it (arm may run under the
// write coalescer's lock, on the caller's goroutine), but for fired, which
// the interrupt's own goroutine sets and the caller reads (an atomic).
type callerInterrupt struct {
	ctx  context.Context
	c    *tcpConn
	seq  uint64
	stop func() bool
	// fired is set when the interrupt runs, before it touches the
	// connection: ending a write the caller still owned closes the
	// connection, although the request may have gone out whole.
	fired atomic.Bool
}

func (i *callerInterrupt) arm() {
	if i.stop != nil {
		return
	}
	c, seq, ctx := i.c, i.seq, i.ctx
	i.stop = context.AfterFunc(ctx, func() {
		i.fired.Store(true)
		c.interruptCaller(seq, ctx)
	})
}

// explain gives err, a connection lost after the caller's interrupt ran,
// the caller's context as its cause: the caller gave up, and the interrupt
// closes the connection when the caller still owned the write, whether or
// not its request had gone out whole. The verdict stays may-have-executed.
func (i *callerInterrupt) explain(method string, err error) error {
	if i == nil || !i.fired.Load() || !errors.Is(err, ErrConnLost) ||
		semantics.ClassOf(err) != semantics.ClassMaybeExecuted {
		return err
	}
	return semantics.MaybeExecuted(fmt.Errorf("rpc: %s: %w (and the connection was lost: %v)", method, i.ctx.Err(), err))
}

func (i *callerInterrupt) disarm() {
	if i.stop != nil {
		i.stop()
	}
}
