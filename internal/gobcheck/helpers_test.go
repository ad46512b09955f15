package gobcheck

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"testing"
)

// wb builds gob bytes by hand, for messages an Encoder would not send.
type wb []byte

func (w wb) u(v uint64) wb {
	if v < 0x80 {
		return append(w, byte(v))
	}
	var be [8]byte
	n := 0
	for x := v; x > 0; x >>= 8 {
		n++
	}
	for i := range n {
		be[8-n+i] = byte(v >> (8 * (n - 1 - i)))
	}
	w = append(w, byte(256-n))
	return append(w, be[8-n:]...)
}

func (w wb) i(v int64) wb {
	if v < 0 {
		return w.u(uint64(^v)<<1 | 1)
	}
	return w.u(uint64(v) << 1)
}

func (w wb) s(str string) wb { return append(w.u(uint64(len(str))), str...) }

func (w wb) raw(b ...byte) wb { return append(w, b...) }

// common encodes a CommonType value.
func (w wb) common(name string, id int64) wb {
	w = w.u(1) // CommonType is field 0
	if name != "" {
		w = w.u(1).s(name).u(1).i(id)
	} else {
		w = w.u(2).i(id)
	}
	return w.u(0)
}

type fdef struct {
	name string
	id   int64
}

// Type definition messages, as an Encoder writes them.
func structDef(id int64, name string, fields ...fdef) []byte {
	w := wb{}.i(-id).u(3).common(name, id)
	if len(fields) > 0 {
		w = w.u(1).u(uint64(len(fields)))
		for _, f := range fields {
			w = w.u(1).s(f.name).u(1).i(f.id).u(0)
		}
	}
	return w.u(0).u(0)
}

func sliceDef(id, elem int64) []byte {
	return wb{}.i(-id).u(2).common("", id).u(1).i(elem).u(0).u(0)
}

func arrayDef(id, elem, n int64) []byte {
	w := wb{}.i(-id).u(1).common("", id).u(1).i(elem)
	if n != 0 {
		w = w.u(1).i(n)
	}
	return w.u(0).u(0)
}

func mapDef(id, key, elem int64) []byte {
	return wb{}.i(-id).u(4).common("", id).u(1).i(key).u(1).i(elem).u(0).u(0)
}

// gobEncDef defines a GobEncoder (which 0), BinaryMarshaler (1) or
// TextMarshaler (2) type.
func gobEncDef(id int64, which int) []byte {
	return wb{}.i(-id).u(uint64(5+which)).common("T", id).u(0).u(0)
}

// encodeStream encodes each value on one Encoder and returns the stream.
func encodeStream(t testing.TB, values ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	e := gob.NewEncoder(&b)
	for i, v := range values {
		if err := e.Encode(v); err != nil {
			t.Fatalf("encoding value %d (%T): %v", i, v, err)
		}
	}
	return b.Bytes()
}

// checkStream splits a stream into messages and checks them on one Stream.
func checkStream(l Limits, stream []byte) error {
	bodies, rest, err := SplitMessages(stream)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d bytes of an incomplete message at the end", len(rest))
	}
	s := NewStream(l)
	for i, b := range bodies {
		if err := s.Check(b); err != nil {
			return fmt.Errorf("message %d of %d (% x): %w", i, len(bodies), trim(b), err)
		}
	}
	if s.Pending() {
		return fmt.Errorf("stream ended inside a value")
	}
	return nil
}

func trim(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// checkMsgs checks hand-made messages on one Stream and returns the first
// error, with the index of the message that failed.
func checkMsgs(l Limits, msgs ...[]byte) (int, error) {
	s := NewStream(l)
	for i, m := range msgs {
		if err := s.Check(m); err != nil {
			return i, err
		}
	}
	return -1, nil
}
