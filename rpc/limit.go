package rpc

import (
	"errors"
	"fmt"
	"io"
)

// DefaultMaxMessageSize bounds one gob message (a header or a body) on read.
const DefaultMaxMessageSize = 4 << 20

// maxTypeBytes bounds the gob type definitions one stream may carry. A gob
// decoder keeps every type it is told about for the life of the stream, so
// without a bound a peer could grow a connection's memory without end,
// one small message at a time. Real peers send a few hundred bytes of types.
const maxTypeBytes = 1 << 20

// ErrTooManyTypes is reported when a stream defines more gob types than a
// connection will keep.
var ErrTooManyTypes = errors.New("rpc: too many gob type definitions on one connection")

// frameLimiter sits between a connection and its gob.Decoder and follows
// gob's framing (each message is a length, as a gob unsigned integer, then
// that many bytes). A length above max ends the stream with
// ErrMessageTooLarge before the decoder allocates anything for it; the
// bytes before the bad length are still delivered, so the decoder can
// finish the message in front of it.
type frameLimiter struct {
	r   io.Reader
	max uint64
	err error // sticky: returned once the bytes before it are consumed

	// drain is how many bytes of the oversized message are still unread on
	// the underlying reader, for a caller that wants to skip them.
	drain uint64

	// parser state
	body     uint64 // bytes left in the current message body
	countLen int    // bytes left in a multi-byte length; 0 when none pending
	count    uint64 // length being accumulated

	// Each message body starts with a type id, negative for a type
	// definition: its sign is the low bit of its last byte.
	atID      bool   // the next body byte starts the type id
	idLen     int    // bytes left in a multi-byte type id
	msgLen    uint64 // length of the current message
	typeBytes uint64 // bytes of type definitions so far
	maxTypes  uint64
}

func newFrameLimiter(r io.Reader, max int) *frameLimiter {
	return &frameLimiter{r: r, max: uint64(max), maxTypes: maxTypeBytes}
}

func (l *frameLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	if k, bad := l.scan(p[:n]); bad != nil {
		l.err = bad
		if k == 0 {
			return 0, bad
		}
		return k, nil
	}
	return n, err
}

// scan advances the parser over b. On a bad length it returns how many
// bytes precede the message that carries it, and the error.
func (l *frameLimiter) scan(b []byte) (int, error) {
	start := 0 // offset where the current length began
	for i := 0; i < len(b); {
		if l.body > 0 && (l.atID || l.idLen > 0) {
			c := b[i]
			i++
			l.body--
			last := false
			switch {
			case l.idLen > 0:
				l.idLen--
				last = l.idLen == 0
			case c < 0x80:
				last = true
			case 256-int(c) <= 8:
				l.idLen = 256 - int(c)
			default:
				// Not a gob integer: the decoder will say so.
			}
			l.atID = false
			if last && c&1 == 1 {
				if l.typeBytes += l.msgLen; l.typeBytes > l.maxTypes {
					return start, fmt.Errorf("%w (%d bytes, limit %d)", ErrTooManyTypes, l.typeBytes, l.maxTypes)
				}
			}
			continue
		}
		if l.body > 0 {
			skip := uint64(len(b) - i)
			if skip > l.body {
				skip = l.body
			}
			l.body -= skip
			i += int(skip)
			continue
		}
		c := b[i]
		if l.countLen == 0 {
			start = i
			i++
			if c < 0x80 {
				l.count = uint64(c)
			} else {
				n := 256 - int(c)
				if n > 8 {
					return start, fmt.Errorf("rpc: malformed gob length prefix 0x%02x", c)
				}
				l.countLen, l.count = n, 0
				continue
			}
		} else {
			i++
			l.count = l.count<<8 | uint64(c)
			l.countLen--
			if l.countLen > 0 {
				continue
			}
		}
		if l.count > l.max {
			if seen := uint64(len(b) - i); seen < l.count {
				l.drain = l.count - seen
			}
			return start, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, l.count, l.max)
		}
		l.body, l.msgLen, l.atID, l.idLen = l.count, l.count, true, 0
	}
	return 0, nil
}
