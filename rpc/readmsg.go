package rpc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/semrpc/semrpc/internal/gobcheck"
)

// msgReader is the read side of a server connection. It reads the stream
// into a buffer of its own and hands the gob decoder whole messages only,
// each checked first (see internal/gobcheck), so that nothing the peer
// declares is allocated before it has arrived:
//
//   - a gob decoder allocates a message's whole declared length before it
//     reads the message; here a message's buffer grows as its bytes
//     arrive (doubling, never past the declared length), so a peer that
//     announces 4 MiB and sends 3 bytes holds a few KiB;
//   - a gob decoder allocates maps and slices from the counts the sender
//     declares; the check refuses a message whose counts the bytes that
//     follow cannot hold, before the decoder sees it.
//
// It also keeps the connection's read deadlines. While it waits for a
// message to start, the deadline is the idle timeout: when it passes with
// not a byte read since it was set and nothing pending on the connection
// (no call running, no reply being written), the wait ends with errIdle;
// otherwise it is set again. So an idle connection ends between one and
// two idle timeouts after its last byte, and an active one costs a clock
// read per idle timeout, not per message. Once a message has started, the
// rest of it must arrive within the message timeout.
//
// One goroutine reads at a time (the connection's reader); nothing here is
// shared.
type msgReader struct {
	r     io.Reader
	dl    readDeadliner    // nil if the stream has no deadlines
	max   int              // the largest message body accepted
	check *gobcheck.Stream // nil: messages are not checked

	msgTimeout  time.Duration // 0: none
	idleTimeout time.Duration // 0: none
	busy        func() bool   // reports whether calls are pending (not idle)

	buf        []byte // read from r: buf[r0:w] is not handed on yet
	r0         int
	w          int
	msg        []byte    // the message being handed on (in buf, or its own buffer)
	pos        int       // bytes of msg handed on
	dead       time.Time // the read deadline set now; zero for none
	reads      uint64    // reads that returned bytes
	armedReads uint64    // reads when the idle deadline was set
	idleArmed  bool      // the deadline set is the idle one
	started    bool      // the message being read has its deadline
	until      time.Time // set by leave: reading ends then, at a message boundary

	// midRequest is set by the connection between a request's header and
	// its body: the body is waited for within the message timeout.
	midRequest bool
	cont       bool // a value sent in several messages has begun

	defs  []byte // the type-definition messages read, for a fresh decoder (see replay)
	large bool   // a message larger than buf was handed on (see takeLarge)

	err   error  // sticky
	drain uint64 // bytes of an oversized message still unread, for respondFinal
}

// readDeadliner is what msgReader needs of a stream to bound its reads.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// readBufSize is the size of a connection's read buffer: a message that
// fits is handed on from it without a copy.
const readBufSize = 4 << 10

// errIdle ends a connection that stayed idle past its idle timeout.
var errIdle = errors.New("rpc: connection idle past the server's idle timeout")

// errBadMessage ends a connection whose peer sent a message no gob
// encoder makes, or one whose declared counts, nesting or type definitions
// are beyond what the server holds (see internal/gobcheck).
var errBadMessage = errors.New("rpc: malformed or oversized gob message")

// errSlowMessage ends a connection whose message did not arrive whole
// within the message timeout.
var errSlowMessage = errors.New("rpc: a message did not arrive whole within the server's read timeout")

func newMsgReader(r io.Reader, max int, check *gobcheck.Stream) *msgReader {
	m := &msgReader{r: r, max: max, check: check, buf: make([]byte, readBufSize)}
	if d, ok := r.(readDeadliner); ok {
		m.dl = d
	}
	return m
}

// fill waits until at least one byte is buffered, without handing any on:
// a client's reader waits so between messages (awaitMessage). An error
// (a read deadline passing, say) leaves the reader as it was.
func (m *msgReader) fill() error {
	for m.Buffered() == 0 {
		if m.err != nil {
			return m.err
		}
		m.r0, m.w = 0, 0
		n, err := m.r.Read(m.buf)
		m.w = n
		if n > 0 {
			m.reads++
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Buffered reports how many bytes were read and not yet handed on.
func (m *msgReader) Buffered() int { return len(m.msg) - m.pos + m.w - m.r0 }

func (m *msgReader) Read(p []byte) (int, error) {
	if m.pos == len(m.msg) {
		if err := m.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, m.msg[m.pos:])
	m.pos += n
	m.release()
	return n, nil
}

// release lets go of a message of its own buffer once it is all handed
// on: an idle connection keeps only its read buffer.
func (m *msgReader) release() {
	if m.pos == len(m.msg) && len(m.msg) > readBufSize {
		m.msg, m.pos = nil, 0
	}
}

// takeLarge reports whether a message larger than the read buffer was
// handed on since the last call. A gob decoder keeps the last message it
// read for as long as it waits for the next: after a large one, the
// connection starts a fresh decoder (see replay), so that an idle
// connection does not keep it.
func (m *msgReader) takeLarge() bool {
	l := m.large
	m.large = false
	return l
}

// replay returns what a fresh gob decoder of the stream reads: the type
// definitions the stream has sent so far, then the stream.
func (m *msgReader) replay() io.Reader {
	return &replayReader{defs: m.defs, in: m}
}

// replayReader hands on a stream's recorded type definitions, then the
// stream.
type replayReader struct {
	defs []byte
	in   *msgReader
}

func (r *replayReader) Read(p []byte) (int, error) {
	if len(r.defs) > 0 {
		n := copy(p, r.defs)
		r.defs = r.defs[n:]
		return n, nil
	}
	return r.in.Read(p)
}

func (r *replayReader) ReadByte() (byte, error) {
	if len(r.defs) > 0 {
		b := r.defs[0]
		r.defs = r.defs[1:]
		return b, nil
	}
	return r.in.ReadByte()
}

// isTypeDefinition reports whether a message body (after its length)
// defines a type: its type id, a gob signed integer, is negative, which
// is the low bit of its last byte.
func isTypeDefinition(body []byte) bool {
	if len(body) == 0 {
		return false
	}
	last := body[0]
	if b := body[0]; b >= 0x80 {
		k := 256 - int(b)
		if k > 8 || k >= len(body) {
			return false
		}
		last = body[k]
	}
	return last&1 == 1
}

// ReadByte lets the gob decoder read from m without a buffer of its own.
func (m *msgReader) ReadByte() (byte, error) {
	if m.pos == len(m.msg) {
		if err := m.next(); err != nil {
			return 0, err
		}
	}
	b := m.msg[m.pos]
	m.pos++
	m.release()
	return b, nil
}

// next makes the next whole, checked value the one handed on: one
// message, or the messages of a value an encoder sent in several (see
// gobcheck.Stream.Pending), which gob must get together, bounded as one
// message is.
func (m *msgReader) next() error {
	if m.err != nil {
		return m.err
	}
	var acc []byte
	m.cont = false
	for {
		k, err := m.readOne()
		if err != nil {
			if err == errIdle && acc == nil {
				return err // at a message boundary: the stream is still in step
			}
			return m.fail(err)
		}
		if m.check == nil {
			return nil
		}
		if err := m.check.Check(m.msg[k:]); err != nil {
			if errors.Is(err, gobcheck.ErrTooManyTypes) {
				return m.fail(fmt.Errorf("%w: %w: %w", errBadMessage, ErrTooManyTypes, err))
			}
			return m.fail(fmt.Errorf("%w: %w", errBadMessage, err))
		}
		if isTypeDefinition(m.msg[k:]) {
			m.defs = append(m.defs, m.msg...) // bounded: the check bounds a stream's types
		}
		pending := m.check.Pending()
		if acc == nil && !pending {
			m.large = m.large || len(m.msg) > readBufSize
			return nil // the common case: one message, handed on in place
		}
		if len(acc)+len(m.msg) > m.max {
			return m.fail(fmt.Errorf("%w: a value sent in several messages, over %d bytes", ErrMessageTooLarge, m.max))
		}
		acc = append(acc, m.msg...)
		if !pending {
			m.msg, m.pos = acc, 0
			m.large = m.large || len(acc) > readBufSize
			return nil
		}
		m.cont = true // the rest of the value is waited for as a message's rest
	}
}

// readOne reads one whole message (length prefix included) into m.msg
// and returns the length of its prefix. On errIdle nothing was read.
func (m *msgReader) readOne() (int, error) {
	m.msg, m.pos, m.started = nil, 0, false
	if m.w-m.r0 == 0 {
		m.r0, m.w = 0, 0
		if err := m.await(); err != nil {
			return 0, err
		}
	}
	// The length prefix: one byte, or a byte saying how many follow.
	k := 1
	if b := m.buf[m.r0]; b >= 0x80 {
		k = 1 + 256 - int(b)
		if k > 9 {
			return 0, fmt.Errorf("%w: gob length prefix 0x%02x", errBadMessage, b)
		}
	}
	if err := m.fillTo(k); err != nil {
		return 0, err
	}
	n := uint64(m.buf[m.r0])
	if k > 1 {
		n = 0
		for _, b := range m.buf[m.r0+1 : m.r0+k] {
			n = n<<8 | uint64(b)
		}
	}
	if n > uint64(m.max) {
		if have := uint64(m.w - m.r0 - k); have < n {
			m.drain = n - have
		}
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, n, m.max)
	}
	total := k + int(n)
	if total <= len(m.buf) {
		if err := m.fillTo(total); err != nil {
			return 0, err
		}
		m.msg = m.buf[m.r0 : m.r0+total]
		m.r0 += total
	} else if err := m.readLarge(total); err != nil {
		return 0, err
	}
	return k, nil
}

func (m *msgReader) fail(err error) error {
	m.err = err
	m.msg, m.pos = nil, 0
	return err
}

// await waits for the first byte of a message, the buffer being empty.
// The idle deadline is moved only when it would pass too late; one that
// passes too early (the connection was active since it was set, or calls
// are pending) is set again.
func (m *msgReader) await() error {
	if m.midRequest || m.cont {
		// The body of a request whose header came: part of one message,
		// as far as deadlines go.
		m.startMessage()
		n, err := io.ReadAtLeast(m.r, m.buf, 1)
		m.w = n
		if err != nil {
			return m.slow(err)
		}
		m.reads++
		return nil
	}
	for {
		if m.dl != nil {
			if !m.until.IsZero() {
				if !m.dead.Equal(m.until) {
					m.setDeadline(m.until)
				}
			} else if m.idleTimeout > 0 {
				if !m.idleArmed {
					m.setDeadline(time.Now().Add(m.idleTimeout))
					m.idleArmed, m.armedReads = true, m.reads
				}
			} else if !m.dead.IsZero() {
				m.setDeadline(time.Time{})
			}
		}
		n, err := m.r.Read(m.buf[m.w:])
		m.w += n
		if n > 0 {
			m.reads++
			return nil
		}
		if err == nil {
			continue
		}
		if isTimeout(err) && !m.until.IsZero() {
			return errIdle
		}
		if !isTimeout(err) || m.idleTimeout == 0 {
			return err
		}
		// The deadline passed: the idle one, or a message's.
		m.dead, m.idleArmed = time.Time{}, false
		if m.busy != nil && m.busy() {
			continue // calls are pending: the peer waits for their replies
		}
		if m.reads == m.armedReads {
			return errIdle // not a byte since the idle deadline was set
		}
	}
}

// leave makes waits for a message end (errIdle) after grace, whatever is
// pending: the connection is closing.
func (m *msgReader) leave(grace time.Duration) {
	m.until = time.Now().Add(grace)
}

// fillTo reads until the buffer holds n bytes from r0, within the message
// timeout once a message has started. n is at most len(m.buf).
func (m *msgReader) fillTo(n int) error {
	if m.w-m.r0 >= n {
		return nil
	}
	if m.r0 > 0 {
		m.w = copy(m.buf, m.buf[m.r0:m.w])
		m.r0 = 0
	}
	m.startMessage()
	for m.w < n {
		k, err := m.r.Read(m.buf[m.w:])
		m.w += k
		if err != nil && m.w < n {
			return m.slow(err)
		}
	}
	m.reads++
	return nil
}

// readLarge reads a message longer than the read buffer into a buffer of
// its own, which grows as the bytes arrive.
func (m *msgReader) readLarge(total int) error {
	have := m.w - m.r0
	b := make([]byte, have, min(total, max(2*len(m.buf), 2*have)))
	copy(b, m.buf[m.r0:m.w])
	m.r0, m.w = 0, 0
	m.startMessage()
	for len(b) < total {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(total, 2*cap(b)))
			copy(nb, b)
			b = nb
		}
		k, err := m.r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err != nil && len(b) < total {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return m.slow(err)
		}
	}
	m.reads++
	m.msg = b
	return nil
}

// slow names a timeout in the middle of a message for what it is.
func (m *msgReader) slow(err error) error {
	if isTimeout(err) && m.msgTimeout > 0 {
		return fmt.Errorf("%w (%v): %w", errSlowMessage, m.msgTimeout, err)
	}
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// startMessage bounds the rest of a message that has started by the
// message timeout.
func (m *msgReader) startMessage() {
	if m.dl != nil && m.msgTimeout > 0 && !m.started {
		m.started, m.idleArmed = true, false
		m.setDeadline(time.Now().Add(m.msgTimeout))
	}
}

func (m *msgReader) setDeadline(t time.Time) {
	m.dead = t
	m.dl.SetReadDeadline(t)
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
