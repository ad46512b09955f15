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
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/internal/coalesce"
	"github.com/semrpc/semrpc/semantics"
)

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
	out *coalesce.Writer[queuedRequest]
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
	c.out = coalesce.New[queuedRequest](nc)
	c.out.OnWritten = c.written
	c.out.OnFailed = c.fail
	c.enc = gob.NewEncoder(c.out)
	return c
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
	if !c.out.LockCtx(ctx) {
		return semantics.NotSent(fmt.Errorf("rpc: %s: waiting to send behind %d queued bytes: %w", req.ServiceMethod, coalesce.MaxQueuedBytes, ctx.Err()))
	}
	err := c.encodeRequest(req, seq, call)
	if broken := c.out.UnlockAndFlush(c.calls.Load() > 1, 0); broken != nil {
		c.fail(broken)
	}
	return err
}

// encodeRequest appends the request to the write buffer. The coalescer's
// lock must be held.
func (c *tcpConn) encodeRequest(req *Request, seq uint64, call *pendingCall) error {
	if err := c.out.Failed(); err != nil {
		return semantics.NotSent(fmt.Errorf("rpc: sending %s: %w", req.ServiceMethod, err))
	}
	buf := c.out.Buf()
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
	c.out.Tag(queuedRequest{seq: seq, call: call})
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
	answered := c.answered
	c.mu.Unlock()

	if len(taken) > 0 {
		var callErr error
		if !answered && isTLSAlert(err) {
			// The peer refused the TLS handshake: no request was read.
			callErr = semantics.Permanent(semantics.NotSent(fmt.Errorf("%w: %w", ErrConnLost, err)))
		} else {
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
