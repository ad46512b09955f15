package rpc

import (
	"fmt"
	"io"
)

// DefaultMaxMessageSize bounds one gob message (a header or a body) on read.
const DefaultMaxMessageSize = 4 << 20

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
}

func newFrameLimiter(r io.Reader, max int) *frameLimiter {
	return &frameLimiter{r: r, max: uint64(max)}
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
		l.body = l.count
	}
	return 0, nil
}
