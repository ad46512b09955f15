package rpc

import (
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
	"github.com/semrpc/semrpc/internal/gobcheck"
	"github.com/semrpc/semrpc/semantics"
)

// The client connection: who may read, write and close it.
//
// A tcpConn is one connection of a transport (clienttransport.go). Seven
// roles touch it:
//
//   - callers (RoundTrip): register a call in pending, queue its request
//     in out, wait for its outcome in the call's done channel;
//   - the reading caller: the one caller at a time that reads replies
//     itself (readOwn, clientread.go), its own and any that come first,
//     until its own is in; register chooses it when nobody reads;
//   - the reader goroutine (readLoop): reads while calls are pending and no
//     caller reads, and for its whole life a stream that cannot be peeked
//     at (TLS, pipes, wrappers: probe is nil);
//   - the idle watcher (idlewatch.go): gives a connection idle at two looks
//     a reader goroutine, so that a close or shutdown notice is read;
//   - the writer: the caller that writes out's buffer, or the goroutine out
//     starts for what others queued (internal/coalesce, with its own
//     machine); everybody else only appends to the buffer;
//   - interrupts: a caller's context.AfterFunc, which interrupts that
//     caller's own turn as reader (interruptReader) or writer
//     (out.Interrupt), named by the call's seq, and nothing else;
//   - fail and the transport's Close: end the connection.
//
// At any moment:
//
//   - who reads is what read says: readCaller, the caller whose seq is
//     readerSeq; readGoroutine, the reader goroutine; anything else,
//     nobody. register may peek at the socket (probe, which reads nothing)
//     while nobody reads, or while the reader goroutine reads with no call
//     pending (see register);
//   - who writes is what out's state says (coalesce.Caller: the caller
//     that set it; coalesce.Flusher: out's goroutine);
//   - anyone may close, through fail, once: it sets life to lifeFailed and
//     closes nc, and every party then stops at its next step. Nothing else
//     closes nc (out.Interrupt closes it for a caller's interrupted write,
//     through fail's close, under out's lock).
//
// Two machines of the connection's own, each changed by one function that
// panics on a transition not listed here (TestClientConnTransitionsAreTheListedOnes
// holds this list and the tables in the code together):
//
// Read state (read; setRead, c.mu held):
//
//	readNone      → readNoneSeen   the idle watcher's first look
//	readNone      → readChosen     register: a caller finds nobody reading and is to read
//	readNone      → readDone       fail: the connection ended
//	readNoneSeen  → readChosen     register, as from readNone
//	readNoneSeen  → readGoroutine  the idle watcher's second look: a goroutine reads what comes
//	readNoneSeen  → readDone       fail
//	readChosen    → readCaller     beginReading: the chosen caller begins
//	readChosen    → readGoroutine  register: the chosen caller has not begun, another call's reply must not wait
//	readCaller    → readNone       stopReading: no call pending
//	readCaller    → readGoroutine  stopReading, or its ctx ended: calls pending, a goroutine reads on
//	readCaller    → readDone       stopReading: the connection ended
//	readGoroutine → readNone       readLoop: no call pending (probe-able streams only)
//	readGoroutine → readDone       readLoop: the connection ended
//	readStart     → readNone       newTCPConn: a probe-able stream, read by callers
//	readStart     → readGoroutine  newTCPConn: a stream that cannot be peeked at
//
// Lifecycle (life; setLife, c.mu held):
//
//	lifeLive     → lifeDraining  goAway: the server's notice, a refused oversized request, or register found the connection unusable
//	lifeLive     → lifeFailed    fail
//	lifeDraining → lifeFailed    fail: once no call is pending (closeIfDrained), or a break
//
// A call's interrupt does not use the socket's deadline as a message: it
// sets interrupted, under c.mu, only while the caller it names reads
// (readCaller with its seq), and then a past read deadline to wake the
// read; the reader, woken by a deadline, asks interrupted. The turn's end
// (any transition out of readCaller) clears both under the same lock, so
// no deadline outlives the turn that set it.
//
// Tuning (R24 is the contract; these are how it is kept cheaply):
//
//   - register looks at (peeks, one recvfrom with MSG_PEEK, which reads
//     nothing) the socket of a connection nobody reads before sending on
//     it, unless its last reply was read less than lookAfter (50 µs) ago:
//     a caller calling again at once. A close in that instant is found the
//     way a reader goroutine would find it, after the send, and the call
//     ends may-have-executed: less precise, never wrong. In a
//     testing/synctest bubble the look is never skipped (its clock stands
//     still while the network is waited on).
//   - It also looks when the idle watcher's reader goroutine reads a
//     connection with no call pending: that goroutine may not have woken
//     yet to a close that came.
//   - The idle watcher looks every idleLook (10 ms): a connection idle at
//     two looks (10-20 ms) gets a reader goroutine, so that a server's
//     shutdown notice is read, and the connection closed, without waiting
//     for a call (Shutdown need not wait its 500 ms grace for the client).
//   - Four connections in a row that hold bytes no call asked for fail the
//     call not sent; a connection that ended before the server said
//     anything, within redialMax of its dial, paces the next dial as a
//     failed dial does (tcpTransport.ended).
//
// Fields and their owners:
//
//	t, nc, probe, out, enc     set by newTCPConn, then read only
//	br, dec, waiting, graceEnd the reader of the moment (as read names it); handed over with read, under c.mu
//	calls                      callers (atomic)
//	pending, seq, answered     c.mu: callers register, the reader delivers, fail takes all
//	read, readerSeq, interrupted, idleAt  c.mu: setRead's callers; interruptReader
//	life, err                  c.mu: goAway, closeIfDrained, fail (setLife)
//
// Locks: t.mu before c.mu (goAway, lookIdle); out's lock is never held
// while c.mu is taken (out calls OnWritten without it) and c.mu is never
// held while out's lock is taken, except by fail's close inside
// out.Interrupt, which takes no lock of ours. No lock is held across a read
// or a write of nc.
// readState says who reads a connection's replies.

type readState uint8

const (
	readStart     readState = iota // newTCPConn has not decided yet
	readNone                       // no reply expected, nobody reads
	readNoneSeen                   // idle, and the idle watcher has looked once
	readChosen                     // a caller is to read, and has not begun
	readCaller                     // a caller reads until its own reply is in
	readGoroutine                  // the reader goroutine reads
	readDone                       // the connection ended: nobody reads again
)

var readStateNames = [...]string{"readStart", "readNone", "readNoneSeen", "readChosen", "readCaller", "readGoroutine", "readDone"}

func (s readState) String() string { return readStateNames[s] }

// readTransitions are the legal changes of read state (see above).
var readTransitions = map[[2]readState]bool{
	{readNone, readNoneSeen}: true, {readNone, readChosen}: true, {readNone, readDone}: true,
	{readNoneSeen, readChosen}: true, {readNoneSeen, readGoroutine}: true, {readNoneSeen, readDone}: true,
	{readChosen, readCaller}: true, {readChosen, readGoroutine}: true,
	{readCaller, readNone}: true, {readCaller, readGoroutine}: true, {readCaller, readDone}: true,
	{readGoroutine, readNone}: true, {readGoroutine, readDone}: true,
	{readStart, readNone}: true, {readStart, readGoroutine}: true,
}

// connLife is a connection's lifecycle.
type connLife uint8

const (
	lifeLive     connLife = iota // takes new calls
	lifeDraining                 // going away: no new calls; closed once none is pending
	lifeFailed                   // ended: closed, every pending call failed
)

var connLifeNames = [...]string{"lifeLive", "lifeDraining", "lifeFailed"}

func (s connLife) String() string { return connLifeNames[s] }

// lifeTransitions are the legal changes of lifecycle (see above).
var lifeTransitions = map[[2]connLife]bool{
	{lifeLive, lifeDraining}: true, {lifeLive, lifeFailed}: true, {lifeDraining, lifeFailed}: true,
}

// setRead changes who reads. c.mu must be held. Leaving readCaller ends
// the caller's turn: its interrupt, if it came, is undone.
func (c *tcpConn) setRead(to readState) {
	if !readTransitions[[2]readState{c.read, to}] {
		panic(fmt.Sprintf("rpc: illegal read-state transition %v → %v", c.read, to))
	}
	if c.read == readCaller {
		c.readerSeq = 0
		if c.interrupted != nil {
			c.interrupted = nil
			c.nc.SetReadDeadline(time.Time{})
		}
	}
	c.read = to
}

// setLife changes the lifecycle. c.mu must be held.
func (c *tcpConn) setLife(to connLife) {
	if !lifeTransitions[[2]connLife{c.life, to}] {
		panic(fmt.Sprintf("rpc: illegal lifecycle transition %v → %v", c.life, to))
	}
	c.life = to
}

// tcpConn is one connection; see the comment above for who may do what.
type tcpConn struct {
	t     *tcpTransport
	nc    net.Conn
	probe func() probeResult // what the socket holds, without reading it (probe_unix.go); nil when it cannot be peeked at
	// out coalesces the requests of concurrent calls into few writes; enc
	// writes into it, under its lock. A request's tag is its call.
	out *coalesce.Writer[queuedRequest]
	enc *gob.Encoder

	// The reader's: see read.
	br       *msgReader // under dec: whole, checked messages; what it holds was read and not decoded yet
	dec      *gob.Decoder
	waiting  bool      // the reader waits for the next message, between messages
	graceEnd time.Time // the reading caller was interrupted in the middle of a message: the message's grace ends then

	calls atomic.Int32 // RoundTrips using the connection: writes wait for company when others are

	mu          sync.Mutex // protects following
	pending     map[uint64]*pendingCall
	seq         uint64
	answered    bool // a response has been read
	read        readState
	readerSeq   uint64    // the seq of the caller chosen to read, or reading
	interrupted error     // why the reading caller's ctx ended; set with a past read deadline (see setRead)
	idleAt      int64     // monotonic() when read last became readNone; 0 if not known (see monotonic)
	born        time.Time // when it was dialled
	life        connLife
	err         error // why the connection ended (lifeFailed)

	// A call whose caller gave up stays pending as abandoned until its
	// reply is read: while any call is pending, somebody reads.
}

// abandoned stands in the pending map for a call whose caller gave up
// before its reply came: the reply is still read (and dropped), and until
// then the connection is not idle. It is taken for good.
var abandoned = func() *pendingCall {
	p := new(pendingCall)
	p.taken.Store(true)
	return p
}()

// newTCPConn makes a connection of t over nc. Who reads it is decided by
// the transport (see conn), under c.mu, before anyone else sees it.
func newTCPConn(t *tcpTransport, nc net.Conn) *tcpConn {
	c := &tcpConn{
		t:       t,
		nc:      nc,
		pending: make(map[uint64]*pendingCall),
		probe:   newProbe(nc),
		born:    time.Now(),
	}
	// Replies are checked as requests are: a server's bytes are as
	// hostile as a client's until checked (see msgReader).
	c.br = newMsgReader(deadlineReader{c}, t.maxMsg, gobcheck.NewStream(gobcheck.Limits{}))
	c.dec = gob.NewDecoder(c.br)
	c.out = coalesce.New[queuedRequest](nc)
	c.out.OnWritten = c.written
	c.out.OnFailed = c.fail
	c.out.OnInterrupt = func() { c.nc.Close() } // fail then finds the write broken
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
// which is written at once unless a write is in progress, whose writer
// then writes it (see internal/coalesce). An error means the server did
// not get the request: arguments that cannot be encoded fail this call
// alone (not sent, permanent) and leave the connection as it was; a
// connection whose write failed earlier takes no more requests. When a
// write fails, every call whose request it did not write whole is
// completed as not sent, and the connection is failed, which gives the
// calls whose requests were written their may-have-executed verdict.
//
// A request that must wait for room in the buffer (a peer that reads
// slowly) stops waiting when ctx ends: not sent. A caller writing the
// buffer itself is its writer, named by seq: when ctx ends during the
// write, the caller's interrupt (interruptCaller) ends it, and the
// connection with it.
func (c *tcpConn) write(ctx context.Context, req *Request, seq uint64, call *pendingCall, arm func()) error {
	if !c.out.LockCtx(ctx) {
		return semantics.NotSent(fmt.Errorf("rpc: %s: waiting to send behind %d queued bytes: %w", req.ServiceMethod, coalesce.MaxQueuedBytes, ctx.Err()))
	}
	err := c.encodeRequest(req, seq, call)
	if broken := c.out.UnlockAndFlush(c.calls.Load() > 1, seq, arm); broken != nil {
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
	live := c.life == lifeLive
	if live {
		c.setLife(lifeDraining)
	}
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
	drained := c.life == lifeDraining && len(c.pending) == 0
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

// fail ends the connection: it marks it failed, closes it and fails every
// pending call as may-have-executed, all with one failure group (a retry
// budget charges one lost connection once). Later calls redial; a
// connection that ended before the server ever spoke on it paces the
// redial (see tcpTransport.ended).
func (c *tcpConn) fail(err error) {
	c.mu.Lock()
	if c.life == lifeFailed {
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
	c.setLife(lifeFailed)
	if c.read == readNone || c.read == readNoneSeen {
		c.setRead(readDone) // a reader that reads now ends its turn itself
	}
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
	if !answered {
		t.ended(c)
	}
	t.mu.Unlock()
}

// probeResult is what a peek at an idle connection's socket found.
type probeResult uint8

const (
	probeEmpty probeResult = iota // nothing: the connection may be used
	probeData                     // bytes no call asked for (the server's shutdown notice, say)
	probeEnded                    // the server closed or reset it
)

// interruptCaller is a caller's interrupt, run when its ctx ends while its
// call (seq) is registered: it ends the caller's own write, if it is
// writing the buffer now, and its own turn as reader, if it reads now.
// Nothing else: a write or a read of anyone else is never touched.
func (c *tcpConn) interruptCaller(seq uint64, ctx context.Context) {
	cause := context.Cause(ctx)
	c.out.Interrupt(seq, fmt.Errorf("rpc: writing requests: the writing caller's context ended: %w", cause))
	c.interruptReader(seq, cause)
}

// interruptReader wakes the caller seq from its read, if it is the reading
// caller: interrupted says why the read deadline passed, and the turn's
// end (setRead) undoes both.
func (c *tcpConn) interruptReader(seq uint64, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read != readCaller || c.readerSeq != seq || c.interrupted != nil {
		return
	}
	c.interrupted = cause
	c.nc.SetReadDeadline(aLongTimeAgo)
}

// markAnswered notes that a message came from the server; the first one
// tells the transport that the server speaks, which resets its redial
// pacing. c.mu must not be held.
func (c *tcpConn) markAnswered() {
	c.mu.Lock()
	first := !c.answered
	c.answered = true
	c.mu.Unlock()
	if first {
		c.t.spoke()
	}
}
