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
		if len(c.pending) == 0 && c.life != lifeFailed {
			c.idle()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.setRead(readDone)
	c.mu.Unlock()
}

// startReader starts a reader goroutine. c.mu must be held, and c not
// failed: then Close, which fails c before it waits for the readers, waits
// for this one too.
func (c *tcpConn) startReader() {
	c.setRead(readGoroutine)
	c.t.readers.Add(1)
	go c.readLoop()
}

// idle leaves c with nobody reading: no reply is expected. The transport's
// idle watcher gives it a reader goroutine if it stays idle (see
// watchIdle). c.mu must be held, and c not failed.
func (c *tcpConn) idle() {
	c.setRead(readNone)
	c.idleAt = monotonic()
	c.t.watchIdleConns()
}

// beginReading reports whether the caller of call seq, which register
// chose to read, still is: then it reads (readOwn) or stops (stopReading).
// Another caller that registered meanwhile may have given the reading to a
// goroutine (see register).
func (c *tcpConn) beginReading(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read != readChosen || c.readerSeq != seq {
		return false
	}
	c.setRead(readCaller)
	return true
}

// stopReading ends a caller's turn as the reader: a reader goroutine takes
// over if calls are still pending.
func (c *tcpConn) stopReading() {
	c.mu.Lock()
	switch {
	case c.life == lifeFailed:
		c.setRead(readDone)
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
// that stalls there would hold the caller). The caller's interrupt
// (interruptCaller, armed by RoundTrip) wakes a read that waits.
func (c *tcpConn) readOwn(ctx context.Context, req *Request, seq uint64, call *pendingCall) error {
	c.graceEnd = time.Time{}
	ended := c.readUntil(ctx, call)
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
// (ended): the caller's interrupt wakes the wait with nothing read, and
// nothing is lost. Another error is the stream's.
func (c *tcpConn) awaitMessage(ctx context.Context) (ended bool, err error) {
	if ctx.Err() != nil {
		return true, nil
	}
	c.waiting = true
	err = c.br.fill()
	c.waiting = false
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.wasInterrupted() != nil {
		return true, nil
	}
	return false, err
}

// wasInterrupted returns why the reading caller was interrupted, or nil.
func (c *tcpConn) wasInterrupted() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interrupted
}

// aLongTimeAgo is a read deadline in the past: a read waiting on the
// connection returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// deadlineReader is the connection as its reader reads it. Only a reading
// caller's interrupt sets a read deadline (see interruptReader): between
// messages its wait ends (awaitMessage); in the middle of a message the
// reading goes on for replyGrace, under a deadline the reader sets.
type deadlineReader struct{ c *tcpConn }

func (r deadlineReader) Read(p []byte) (int, error) {
	c := r.c
	for {
		n, err := c.nc.Read(p)
		if n > 0 || err == nil || c.waiting || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		cause := c.wasInterrupted()
		if cause == nil {
			return n, err
		}
		// The caller's ctx ended in the middle of a message: the message
		// gets replyGrace to come whole.
		if c.graceEnd.IsZero() {
			c.graceEnd = time.Now().Add(replyGrace)
		}
		if time.Now().Before(c.graceEnd) {
			c.nc.SetReadDeadline(c.graceEnd)
			continue
		}
		return n, fmt.Errorf("rpc: a reply stalled after its reader's caller gave up (%w): %w", cause, err)
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
		c.markAnswered()
		c.goAway()
		return !c.closeIfDrained()
	}
	c.mu.Lock()
	first := !c.answered
	c.answered = true
	call := c.pending[resp.Seq]
	delete(c.pending, resp.Seq)
	// Taken under the lock, as fail takes them: a call completed by
	// another party may be pooled and reused at once.
	if call != nil && !call.take() {
		call = nil // its caller gave up on it
	}
	c.mu.Unlock()
	if first {
		c.t.spoke()
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
