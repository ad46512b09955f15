package rpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// replyGrace is how long a call whose context has ended waits for the
// reply being decoded for it before it breaks the connection.
const replyGrace = 50 * time.Millisecond

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
