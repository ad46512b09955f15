package gobcheck

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Errors. Every error Check returns wraps one of these, with a short
// context (which count, how many bytes remained). Text taken from the
// message is quoted and cut short.
var (
	// ErrMalformed: the message is not something a gob Encoder sends, or a
	// count in it is larger than the bytes that follow could hold.
	ErrMalformed = errors.New("gobcheck: malformed message")
	// ErrTooDeep: a value nests deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("gobcheck: value nested too deep")
	// ErrTooManyTypes: the stream defines more types than Limits.MaxTypes,
	// or type definitions estimated to hold more than Limits.MaxTypeBytes.
	ErrTooManyTypes = errors.New("gobcheck: too many type definitions")
)

// maxQuoted is how much of a string taken from a message an error shows.
const maxQuoted = 64

// quote renders bytes taken from a message for an error text: quoted, and
// cut at maxQuoted bytes.
func quote(b []byte) string {
	if len(b) <= maxQuoted {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:maxQuoted])) + "..."
}

// ReadLength decodes the gob unsigned integer at the start of b, as found
// before each message of a stream (the message's length) and before every
// count inside one. A byte below 0x80 is the value itself; a byte 0xF8–0xFF
// says that 1–8 big-endian bytes of value follow.
//
// ok reports whether b begins with a whole, valid integer, which then takes
// size bytes. When ok is false, size > len(b) means b is too short (at least
// size bytes are needed), and size 0 means the first byte cannot begin a gob
// unsigned integer.
func ReadLength(b []byte) (n uint64, size int, ok bool) {
	if len(b) == 0 {
		return 0, 1, false
	}
	c := b[0]
	if c < 0x80 {
		return uint64(c), 1, true
	}
	k := 256 - int(c)
	if k > 8 {
		return 0, 0, false
	}
	if len(b) < 1+k {
		return 0, 1 + k, false
	}
	for _, d := range b[1 : 1+k] {
		n = n<<8 | uint64(d)
	}
	return n, 1 + k, true
}

// SplitMessages cuts a gob stream into message bodies: each body is what
// follows one length prefix, type id first, as Check takes it. rest is a
// trailing incomplete message (its prefix included), to be completed by
// more input. err reports a length prefix that is not a gob unsigned
// integer, or a length too large to be an int; the bodies before it are
// returned. The bodies alias b.
func SplitMessages(b []byte) (bodies [][]byte, rest []byte, err error) {
	for len(b) > 0 {
		n, size, ok := ReadLength(b)
		if !ok {
			if size == 0 {
				return bodies, b, fmt.Errorf("%w: message length prefix begins with byte 0x%02x", ErrMalformed, b[0])
			}
			return bodies, b, nil
		}
		if n > math.MaxInt-uint64(size) {
			return bodies, b, fmt.Errorf("%w: message length %d", ErrMalformed, n)
		}
		if uint64(len(b)-size) < n {
			return bodies, b, nil
		}
		bodies = append(bodies, b[size:size+int(n)])
		b = b[size+int(n):]
	}
	return bodies, nil, nil
}

// uintAt decodes a gob unsigned integer from b[i:end]. ok is false when it
// is cut off by end or longer than 8 bytes; describeUint says which.
func uintAt(b []byte, i, end int) (v uint64, next int, ok bool) {
	if i >= end {
		return 0, i, false
	}
	c := b[i]
	if c < 0x80 {
		return uint64(c), i + 1, true
	}
	k := 256 - int(c)
	if k > 8 || end-i-1 < k {
		return 0, i, false
	}
	for _, d := range b[i+1 : i+1+k] {
		v = v<<8 | uint64(d)
	}
	return v, i + 1 + k, true
}

// describeUint explains why uintAt failed at b[i:end].
func describeUint(b []byte, i, end int) string {
	if i >= end {
		return "truncated (no bytes left)"
	}
	k := 256 - int(b[i])
	if k > 8 {
		return fmt.Sprintf("invalid (first byte 0x%02x, longer than 8 bytes)", b[i])
	}
	return fmt.Sprintf("truncated (%d bytes announced, %d left)", k, end-i-1)
}

// toInt turns a decoded unsigned integer into the signed integer it
// carries: bit 0 says whether the rest is complemented.
func toInt(u uint64) int64 {
	if u&1 != 0 {
		return ^int64(u >> 1)
	}
	return int64(u >> 1)
}
