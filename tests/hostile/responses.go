//go:build linux

package hostile

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
)

// response is the part of the server's response header an attacker looks
// at (rpc's wireResponse; gob matches fields by name).
type response struct {
	ServiceMethod string
	Seq           uint64
	Error         string
	Code          uint8
}

// keepLimit is the largest message a respReader hands to its decoder;
// larger ones are counted and skipped, never held in memory.
const keepLimit = 64 << 10

// respReader reads the server's responses on an attacker's connection. It
// counts every byte, gives the small messages (type definitions, response
// headers, bodies asked for) to a gob decoder, and skips the others
// through a fixed buffer, so that reading a large reply costs the
// attacker no memory that would be blamed on the server.
type respReader struct {
	r       *bufio.Reader
	kept    bytes.Buffer // messages for dec; a ByteReader, so dec reads no further than it must
	dec     *gob.Decoder
	scratch []byte
	broken  bool  // a header was skipped: the decoder is out of step, responses are only counted
	read    int64 // bytes read so far
}

func newRespReader(c *rawConn) *respReader {
	rr := &respReader{r: bufio.NewReaderSize(c, 32<<10), scratch: make([]byte, 32<<10)}
	rr.dec = gob.NewDecoder(&rr.kept)
	return rr
}

// readMessage reads one message. A message no larger than keepLimit is
// appended, framed, to kept when keep says so; others are skipped. It
// reports the message's type id (negative for a type definition) and
// whether it was kept.
func (rr *respReader) readMessage(keep func(id int64) bool) (id int64, kept bool, err error) {
	n, err := rr.readUint()
	if err != nil {
		return 0, false, err
	}
	// The type id opens the body: read it first, then decide.
	u, err := rr.peekUint(n)
	if err != nil {
		return 0, false, err
	}
	id = int64(u >> 1)
	if u&1 == 1 {
		id = ^id
	}
	if n <= keepLimit && keep(id) {
		rr.kept.Write(appendUint(rr.scratch[:0], n))
		if _, err := io.CopyN(&rr.kept, rr.r, int64(n)); err != nil {
			return 0, false, err
		}
		rr.read += int64(n)
		return id, true, nil
	}
	return id, false, rr.skip(n)
}

// readUint reads a gob unsigned integer off the stream.
func (rr *respReader) readUint() (uint64, error) {
	b, err := rr.r.ReadByte()
	if err != nil {
		return 0, err
	}
	rr.read++
	if b < 0x80 {
		return uint64(b), nil
	}
	n := 256 - int(b)
	if n > 8 {
		return 0, fmt.Errorf("hostile: bad gob count byte 0x%02x", b)
	}
	var x uint64
	for range n {
		c, err := rr.r.ReadByte()
		if err != nil {
			return 0, err
		}
		rr.read++
		x = x<<8 | uint64(c)
	}
	return x, nil
}

// peekUint decodes the gob unsigned integer at the start of the next
// message body (of length n) without consuming it.
func (rr *respReader) peekUint(n uint64) (uint64, error) {
	if n == 0 {
		return 0, errors.New("hostile: an empty gob message")
	}
	first, err := rr.r.Peek(1)
	if err != nil {
		return 0, err
	}
	if first[0] < 0x80 {
		return uint64(first[0]), nil
	}
	k := 256 - int(first[0])
	if k > 8 {
		return 0, fmt.Errorf("hostile: bad gob count byte 0x%02x", first[0])
	}
	b, err := rr.r.Peek(1 + k)
	if err != nil {
		return 0, err
	}
	var x uint64
	for _, c := range b[1:] {
		x = x<<8 | uint64(c)
	}
	return x, nil
}

func (rr *respReader) skip(n uint64) error {
	for n > 0 {
		m, err := rr.r.Discard(int(min(n, uint64(len(rr.scratch)))))
		rr.read += int64(m)
		n -= uint64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// next reads one response: its header, decoded unless it is too large to
// keep (then huge is set), and its body, decoded into body when body is
// not nil and the response carries no error, else skipped. size counts
// every byte of the response, type definitions included.
func (rr *respReader) next(body any) (resp response, size int64, huge bool, err error) {
	start := rr.read
	defer func() { size = rr.read - start }()
	keepTypes := func(id int64) bool { return !rr.broken }
	// The header, after the type definitions it needs.
	for {
		id, kept, err := rr.readMessage(keepTypes)
		if err != nil {
			return resp, 0, huge, err
		}
		if id < 0 {
			continue
		}
		if !kept {
			// Too large to keep: the decoder is out of step from here on.
			huge, rr.broken = true, true
			break
		}
		if err := rr.dec.Decode(&resp); err != nil {
			return resp, 0, huge, fmt.Errorf("hostile: decoding a response header: %w", err)
		}
		break
	}
	// The body, after the type definitions it needs; they are kept even
	// when the body is skipped, for the responses that follow.
	wantBody := body != nil && resp.Error == "" && !rr.broken
	for {
		id, kept, err := rr.readMessage(func(id int64) bool { return !rr.broken && (id < 0 || wantBody) })
		if err != nil {
			return resp, 0, huge, err
		}
		if id < 0 {
			continue
		}
		if wantBody {
			if !kept {
				rr.broken = true
				return resp, 0, huge, errors.New("hostile: a response body too large to decode")
			}
			if err := rr.dec.Decode(body); err != nil {
				return resp, 0, huge, fmt.Errorf("hostile: decoding a response body: %w", err)
			}
		}
		return resp, 0, huge, nil
	}
}
