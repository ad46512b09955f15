package labrpc

import (
	"bytes"
	"encoding"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// Values cross the network as gob bytes, as in the classic lab network, but
// without a fresh gob.Encoder and gob.Decoder per message: each Go type has
// a pool of pipes, a persistent encoder writing into a buffer that a
// persistent decoder reads from. A value is encoded and decoded right away,
// so the copy is exactly what decoding the bytes later would give, and type
// definitions are sent and compiled once per pipe instead of once per
// message. To keep GetTotalBytes what the classic network counts (a fresh
// encoder per message), each copy is charged the size of the type's
// definitions plus its value bytes. That is exact unless the type holds an
// interface: a fresh encoder sends the definition of each concrete type
// found in one (a KV Op in a Raft log entry) in every message, a
// persistent one once, so such values are measured with a fresh encoder.

// typeCodec is the pipe pool of one type.
type typeCodec struct {
	base      reflect.Type // the type with pointers stripped
	typeBytes int          // size of the type definitions a fresh encoder sends first
	hasIface  bool         // values may hold concrete types the definitions do not cover
	pool      sync.Pool    // *pipe
}

// pipe is a persistent gob encoder → decoder pair. It is discarded after any
// error, since the streams may then disagree.
type pipe struct {
	buf bytes.Buffer
	enc *gob.Encoder
	dec *gob.Decoder
}

var codecs sync.Map // reflect.Type → *typeCodec

var errNilValue = errors.New("labrpc: nil value")

// codecFor returns the codec of t's base type.
func codecFor(t reflect.Type) (*typeCodec, error) {
	if c, ok := codecs.Load(t); ok {
		return c.(*typeCodec), nil
	}
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	tc := &typeCodec{base: base, hasIface: holdsInterface(base, make(map[reflect.Type]bool))}
	p, typeBytes, err := tc.newPipe()
	if err != nil {
		return nil, err
	}
	tc.typeBytes = typeBytes
	tc.pool.Put(p)
	c, _ := codecs.LoadOrStore(t, tc)
	return c.(*typeCodec), nil
}

// newPipe makes a primed pipe: it sends the zero value twice, so the decoder
// has seen the type definitions, and the difference in size between the two
// messages is the size of those definitions.
func (tc *typeCodec) newPipe() (*pipe, int, error) {
	p := &pipe{}
	p.enc = gob.NewEncoder(&p.buf)
	p.dec = gob.NewDecoder(&p.buf)
	zero := reflect.New(tc.base)
	var sizes [2]int
	for i := range sizes {
		if err := p.enc.EncodeValue(zero); err != nil {
			return nil, 0, err
		}
		sizes[i] = p.buf.Len()
		if err := p.dec.DecodeValue(reflect.New(tc.base)); err != nil {
			return nil, 0, err
		}
		if p.buf.Len() != 0 {
			return nil, 0, fmt.Errorf("labrpc: gob pipe for %s out of step", tc.base)
		}
	}
	return p, sizes[0] - sizes[1], nil
}

func (tc *typeCodec) get() (*pipe, error) {
	if p, ok := tc.pool.Get().(*pipe); ok {
		return p, nil
	}
	p, _, err := tc.newPipe()
	return p, err
}

// copyValue gob-encodes src and decodes the bytes into dst, a non-nil
// pointer. It returns the number of bytes a fresh gob encoder would have
// produced for src.
func copyValue(src, dst reflect.Value) (int, error) {
	if !src.IsValid() || (src.Kind() == reflect.Pointer && src.IsNil()) {
		return 0, errNilValue
	}
	if dst.Kind() != reflect.Pointer || dst.IsNil() {
		return 0, fmt.Errorf("labrpc: decode target must be a non-nil pointer, not %s", dst.Type())
	}
	tc, err := codecFor(src.Type())
	if err != nil {
		return 0, err
	}
	p, err := tc.get()
	if err != nil {
		return 0, err
	}
	p.buf.Reset()
	if err := p.enc.EncodeValue(src); err != nil {
		return 0, err // p is dropped
	}
	n := tc.typeBytes + p.buf.Len()
	if tc.hasIface {
		var c byteCounter
		if err := gob.NewEncoder(&c).EncodeValue(src); err == nil {
			n = int(c)
		}
	}
	if err := p.dec.DecodeValue(dst); err != nil {
		return n, err
	}
	if p.buf.Len() != 0 {
		return n, fmt.Errorf("labrpc: gob pipe for %s out of step", tc.base)
	}
	tc.pool.Put(p)
	return n, nil
}

// snapshot returns a private gob copy of v: a pointer to a fresh value of
// v's base type.
func snapshot(v any) (reflect.Value, int, error) {
	if v == nil {
		return reflect.Value{}, 0, errNilValue
	}
	src := reflect.ValueOf(v)
	base := src.Type()
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	dst := reflect.New(base)
	n, err := copyValue(src, dst)
	return dst, n, err
}

// byteCounter is a writer that only counts.
type byteCounter int

func (c *byteCounter) Write(p []byte) (int, error) {
	*c += byteCounter(len(p))
	return len(p), nil
}

var (
	gobEncoderType     = reflect.TypeOf((*gob.GobEncoder)(nil)).Elem()
	binaryMarshalerTyp = reflect.TypeOf((*encoding.BinaryMarshaler)(nil)).Elem()
)

// holdsInterface reports whether gob would meet an interface value inside
// a value of type t.
func holdsInterface(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	pt := reflect.PointerTo(t)
	if t.Implements(gobEncoderType) || pt.Implements(gobEncoderType) ||
		t.Implements(binaryMarshalerTyp) || pt.Implements(binaryMarshalerTyp) {
		return false // gob sends its bytes, opaque
	}
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holdsInterface(t.Elem(), seen)
	case reflect.Map:
		return holdsInterface(t.Key(), seen) || holdsInterface(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).IsExported() && holdsInterface(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}
