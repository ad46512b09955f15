package gobcheck

import "fmt"

// Limits bounds what one stream may make a decoder hold. Zero fields mean
// the defaults.
type Limits struct {
	// MaxDepth bounds the nesting levels of one value: each struct, slice,
	// array, map and non-nil interface entered is a level. Default 100.
	MaxDepth int
	// MaxTypeBytes bounds the memory the type definitions of one stream are
	// estimated to make a gob Decoder hold: a fixed cost per type and per
	// struct field, plus the bytes of their names. Default 256 KiB.
	MaxTypeBytes int
	// MaxTypes bounds the type definitions of one stream. Default 1024.
	MaxTypes int
	// AllowNestedTypeDefs accepts a type definition in the value of an
	// interface that is itself in an interface's value. An Encoder sends
	// one there the first time such a nested interface holds a type new to
	// the stream; gob's Decoder reads it right only if it decodes the outer
	// interface's value. If it skips that value (a field the receiving
	// struct does not have; a body decoded into nil, as net/rpc does for
	// an unknown method) it skips by a byte count that, as the Encoder
	// writes it, ends at the nested definition, and reads what follows as
	// what comes after the interface: a peer can shape those bytes into
	// counts Check never saw (a map of 2^32 entries), and an Encoder's own
	// stream can leave the Decoder's types inconsistent, after which it
	// panics. Off by default: Check refuses such a definition (ErrMalformed).
	// See the package documentation.
	AllowNestedTypeDefs bool
}

// Defaults for the zero fields of Limits.
const (
	DefaultMaxDepth     = 100
	DefaultMaxTypeBytes = 256 << 10
	DefaultMaxTypes     = 1024
)

// maxCount bounds every count whatever bytes follow: no gob stream is this
// large. It keeps arithmetic on counts far from overflow.
const maxCount = 1 << 48

// Interface frame stages.
const (
	stageTypes   = 0 // reading type definitions, then the concrete type id
	stageContent = 1 // the concrete value is being walked above this frame
)

// frame is one level of the value being walked.
type frame struct {
	p *plan
	// slice, array: elements left; map: entries left;
	// interface: where its name starts in the message.
	left uint64
	// struct: the current field number (-1 before the first);
	// map: 1 if the next item is an element, 0 if a key;
	// interface: the stage.
	field int32
	// interface: the length of its name, for errors, at most maxQuoted+1;
	// -1 if the name is in an earlier message (Stream.name has it).
	nameLen int32
}

// Stream follows one direction of a gob stream (one gob.Decoder's input),
// message by message.
type Stream struct {
	maxDepth, maxTypeBytes, maxTypes int
	rejectNested                     bool

	types     map[int32]*plan
	last      *plan
	typeBytes int
	epoch     uint32
	scratch   []*plan

	// The message being checked and the walk through it. ends[0] is the
	// message's end; ends[k] is the end of the current chunk of the
	// interface value k levels deep (see Check).
	buf   []byte
	pos   int
	ends  []int
	stack []frame

	seqDefs []int32 // types defined in the current interface type sequence
	pending bool    // the last message ended inside a value
	name    []byte  // the name of the interface value the last message ended in
	err     error   // the first error: the stream is dead
}

// NewStream returns a Stream that has seen no messages.
func NewStream(l Limits) *Stream {
	s := &Stream{
		maxDepth:     l.MaxDepth,
		maxTypeBytes: l.MaxTypeBytes,
		maxTypes:     l.MaxTypes,
		rejectNested: !l.AllowNestedTypeDefs,
		types:        make(map[int32]*plan),
	}
	if s.maxDepth <= 0 {
		s.maxDepth = DefaultMaxDepth
	}
	if s.maxTypeBytes <= 0 {
		s.maxTypeBytes = DefaultMaxTypeBytes
	}
	if s.maxTypes <= 0 {
		s.maxTypes = DefaultMaxTypes
	}
	return s
}

// Pending reports whether the last message Check accepted ended inside a
// value, which the next message continues. An Encoder does that when an
// interface value holds a type the stream has not defined yet: the value
// so far and the type's definition go out as one message, and the value
// goes on in the next (after any further definitions, one message each).
//
// gob's Decoder allocates as it reads, so a count early in such a value is
// bounded only by the messages that complete it: a caller that wants the
// bound Check gives must hand a pending message to the Decoder only
// together with the messages that follow, up to one after which Pending is
// false.
func (s *Stream) Pending() bool { return s.pending }

// Check validates one whole message body: the bytes after the message's
// length prefix (type id first). A type definition (negative id) is
// decoded into the stream's own type table, and counted against the
// limits. A value message is walked against its wire type; every count
// (slice/array/map elements, string/[]byte length, interface name and
// value length, GobEncoder/BinaryMarshaler/TextMarshaler payload length)
// must be one the bytes that follow can hold, every type id must be
// defined (predefined or earlier on the stream), nesting must stay within
// MaxDepth.
//
// A value may continue in the next message (see Pending). The byte count
// before an interface's value must be exact, and the types defined before
// it must be ones its type needs. With Limits.AllowNestedTypeDefs, a
// definition may also end a chunk of an interface's value, and the next
// chunk follows with its own byte count, which must be exact too.
//
// On error the stream must be abandoned (the connection closed): Check
// returns the same error from then on.
func (s *Stream) Check(msg []byte) error {
	if s.err != nil {
		return s.err
	}
	err := s.check(msg)
	if err != nil {
		s.err = err
		s.pending = false
	}
	s.buf = nil
	return err
}

func (s *Stream) check(msg []byte) error {
	if len(msg) == 0 {
		return fmt.Errorf("%w: empty message", ErrMalformed)
	}
	s.buf, s.pos = msg, 0
	s.ends = append(s.ends[:0], len(msg))
	if s.pending {
		// The walk stopped in an interface's type sequence, at the end of
		// the last message: this one goes on from there.
		s.pending = false
		return s.run()
	}
	s.stack = s.stack[:0]
	u, next, ok := uintAt(msg, 0, len(msg))
	if !ok {
		return fmt.Errorf("%w: message type id %s", ErrMalformed, describeUint(msg, 0, len(msg)))
	}
	s.pos = next
	id := toInt(u)
	switch {
	case id < 0:
		if err := s.define(-id); err != nil {
			return err
		}
		if s.pos != len(msg) {
			return fmt.Errorf("%w: %d bytes after the definition of type %d", ErrMalformed, len(msg)-s.pos, -id)
		}
		return nil
	case id == 0:
		return fmt.Errorf("%w: message type id 0", ErrMalformed)
	}
	p, err := s.planFor(id, "value")
	if err != nil {
		return err
	}
	if err := s.top(p); err != nil {
		return err
	}
	return s.run()
}

// define reads the definition of type id at s.pos.
func (s *Stream) define(id int64) error {
	if id < firstUserID || id > maxTypeID {
		return fmt.Errorf("%w: definition of type id %d (user types are %d to %d)", ErrMalformed, id, firstUserID, maxTypeID)
	}
	if s.types[int32(id)] != nil {
		return fmt.Errorf("%w: type id %d defined twice", ErrMalformed, id)
	}
	if len(s.types) >= s.maxTypes {
		return fmt.Errorf("%w: more than %d type definitions", ErrTooManyTypes, s.maxTypes)
	}
	c := cursor{b: s.buf, pos: s.pos, end: s.ends[len(s.ends)-1]}
	p, cost, err := typeDef(&c, int32(id), s.maxTypeBytes-s.typeBytes)
	if err != nil {
		return err
	}
	s.pos = c.pos
	s.types[int32(id)] = p
	s.typeBytes += cost
	return nil
}

// top starts walking a value of p sent as a whole (a message's value, or
// an interface's concrete value): a struct as it is, anything else as a
// struct's single field 0 (a 0 delta before it).
func (s *Stream) top(p *plan) error {
	if p.kind == kStruct {
		return s.push(frame{p: p, field: -1})
	}
	end := s.ends[len(s.ends)-1]
	d, next, ok := uintAt(s.buf, s.pos, end)
	if !ok || d != 0 {
		if !ok {
			return fmt.Errorf("%w: singleton marker %s", ErrMalformed, describeUint(s.buf, s.pos, end))
		}
		return fmt.Errorf("%w: singleton marker %d, not 0", ErrMalformed, d)
	}
	s.pos = next
	return s.visit(p)
}

func (s *Stream) push(f frame) error {
	if len(s.stack) >= s.maxDepth {
		return s.tooDeep()
	}
	s.stack = append(s.stack, f)
	return nil
}

func (s *Stream) tooDeep() error {
	return fmt.Errorf("%w: more than %d levels", ErrTooDeep, s.maxDepth)
}

// count reads the count of a slice, array or map of p, checking that the
// bytes that can follow hold that many items of at least per bytes each.
func (s *Stream) count(p *plan, per uint64, what string) (uint64, error) {
	lvl := len(s.ends) - 1
	end := s.ends[lvl]
	n, next, ok := uintAt(s.buf, s.pos, end)
	if !ok {
		return 0, fmt.Errorf("%w: %s count %s", ErrMalformed, what, describeUint(s.buf, s.pos, end))
	}
	s.pos = next
	// Items that can hold an interface may be cut by a type definition:
	// then they go on past this chunk, to the end of the enclosing one,
	// or (at the top level) into the next message; the walk bounds them.
	limit := end
	if p.elem.split || (p.key != nil && p.key.split) {
		switch {
		case lvl == 0:
			limit = -1
		case !s.rejectNested:
			limit = s.ends[lvl-1]
		}
	}
	if limit >= 0 && n > uint64(limit-s.pos)/per || n > maxCount {
		return 0, fmt.Errorf("%w: %s count %d exceeds the %d bytes left", ErrMalformed, what, n, end-s.pos)
	}
	return n, nil
}

// visit walks one value of p at s.pos: a scalar at once, a composite by
// pushing its frame.
func (s *Stream) visit(p *plan) error {
	end := s.ends[len(s.ends)-1]
	switch p.kind {
	case kUint:
		if s.pos < end && s.buf[s.pos] < 0x80 {
			s.pos++
			return nil
		}
		_, next, ok := uintAt(s.buf, s.pos, end)
		if !ok {
			return fmt.Errorf("%w: integer %s", ErrMalformed, describeUint(s.buf, s.pos, end))
		}
		s.pos = next
	case kComplex:
		for range 2 {
			_, next, ok := uintAt(s.buf, s.pos, end)
			if !ok {
				return fmt.Errorf("%w: complex %s", ErrMalformed, describeUint(s.buf, s.pos, end))
			}
			s.pos = next
		}
	case kBytes:
		n, next, ok := uintAt(s.buf, s.pos, end)
		if !ok {
			return fmt.Errorf("%w: %s length %s", ErrMalformed, bytesWhat(p), describeUint(s.buf, s.pos, end))
		}
		if n > uint64(end-next) {
			return fmt.Errorf("%w: %s length %d exceeds the %d bytes left", ErrMalformed, bytesWhat(p), n, end-next)
		}
		s.pos = next + int(n)
	case kInterface:
		n, next, ok := uintAt(s.buf, s.pos, end)
		if !ok {
			return fmt.Errorf("%w: interface name length %s", ErrMalformed, describeUint(s.buf, s.pos, end))
		}
		if n > uint64(end-next) {
			return fmt.Errorf("%w: interface name length %d exceeds the %d bytes left", ErrMalformed, n, end-next)
		}
		s.pos = next + int(n)
		if n == 0 {
			return nil // nil interface
		}
		s.seqDefs = s.seqDefs[:0]
		return s.push(frame{p: p, field: stageTypes, left: uint64(next), nameLen: int32(min(n, maxQuoted+1))})
	case kStruct:
		return s.push(frame{p: p, field: -1})
	case kSlice:
		n, err := s.count(p, 1, "slice")
		if err != nil || n == 0 {
			return err
		}
		return s.push(frame{p: p, left: n})
	case kArray:
		n, err := s.count(p, 1, "array")
		if err != nil {
			return err
		}
		if n != uint64(p.length) {
			return fmt.Errorf("%w: array count %d, its type's length is %d", ErrMalformed, n, p.length)
		}
		if n == 0 {
			return nil
		}
		return s.push(frame{p: p, left: n})
	case kMap:
		n, err := s.count(p, 2, "map")
		if err != nil || n == 0 {
			return err
		}
		return s.push(frame{p: p, left: n})
	}
	return nil
}

func bytesWhat(p *plan) string {
	switch p.id {
	case 5:
		return "[]byte"
	case 6:
		return "string"
	}
	return "encoded value"
}

// run walks on until the stack is empty, or the message ends at a type
// definition in an interface value's type sequence (then the stream is
// pending). At the end of the value, the message must end too.
func (s *Stream) run() error {
	for len(s.stack) > 0 {
		top := len(s.stack) - 1
		f := &s.stack[top]
		end := s.ends[len(s.ends)-1]
		switch f.p.kind {
		case kStruct:
			d, next, ok := uintAt(s.buf, s.pos, end)
			if !ok {
				return fmt.Errorf("%w: struct field delta %s", ErrMalformed, describeUint(s.buf, s.pos, end))
			}
			s.pos = next
			if d == 0 {
				s.stack = s.stack[:top]
				continue
			}
			fields := f.p.fields
			if d > uint64(len(fields)-1-int(f.field)) {
				return fmt.Errorf("%w: struct field %d+%d out of range (type %d has %d fields)", ErrMalformed, f.field, d, f.p.id, len(fields))
			}
			f.field += int32(d)
			if err := s.visit(fields[f.field].p); err != nil {
				return err
			}
		case kSlice, kArray:
			if f.left == 0 {
				s.stack = s.stack[:top]
				continue
			}
			if f.p.scalar {
				// Integers all the way: no frames, no calls.
				b, pos := s.buf, s.pos
				for n := f.left; n > 0; n-- {
					if pos < end && b[pos] < 0x80 {
						pos++
						continue
					}
					_, next, ok := uintAt(b, pos, end)
					if !ok {
						return fmt.Errorf("%w: element %s", ErrMalformed, describeUint(b, pos, end))
					}
					pos = next
				}
				s.pos = pos
				s.stack = s.stack[:top]
				continue
			}
			if f.p.elem.kind == kBytes {
				// Strings all the way: no frames.
				b, pos := s.buf, s.pos
				for n := f.left; n > 0; n-- {
					l, next, ok := uintAt(b, pos, end)
					if !ok {
						return fmt.Errorf("%w: %s length %s", ErrMalformed, bytesWhat(f.p.elem), describeUint(b, pos, end))
					}
					if l > uint64(end-next) {
						return fmt.Errorf("%w: %s length %d exceeds the %d bytes left", ErrMalformed, bytesWhat(f.p.elem), l, end-next)
					}
					pos = next + int(l)
				}
				s.pos = pos
				s.stack = s.stack[:top]
				continue
			}
			f.left--
			if err := s.visit(f.p.elem); err != nil {
				return err
			}
		case kMap:
			if f.field == 0 {
				if f.left == 0 {
					s.stack = s.stack[:top]
					continue
				}
				f.left--
				f.field = 1
				if err := s.visit(f.p.key); err != nil {
					return err
				}
			} else {
				f.field = 0
				if err := s.visit(f.p.elem); err != nil {
					return err
				}
			}
		case kInterface:
			if f.field == stageContent {
				lvl := len(s.ends) - 1
				if s.pos != end {
					return s.ifaceErr(f, "value ended %d bytes before its byte count", end-s.pos)
				}
				s.ends = s.ends[:lvl]
				s.stack = s.stack[:top]
				continue
			}
			if err := s.typeSequence(f); err != nil {
				return err
			}
			if s.pending {
				return nil
			}
		}
	}
	if s.pos != len(s.buf) {
		return fmt.Errorf("%w: %d bytes after the value", ErrMalformed, len(s.buf)-s.pos)
	}
	return nil
}

// typeSequence reads, for the interface value of frame f, one type
// definition or the concrete type id, count and the start of the value.
//
// A definition ends the current chunk of the value the interface is in:
// at the top level, the message (the value goes on in the next one); in an
// interface's value, a chunk that the interface's byte count, or the count
// before it, announced. A new chunk follows, with its count.
func (s *Stream) typeSequence(f *frame) error {
	lvl := len(s.ends) - 1
	end := s.ends[lvl]
	u, next, ok := uintAt(s.buf, s.pos, end)
	if !ok {
		return s.ifaceErr(f, "type id %s", describeUint(s.buf, s.pos, end))
	}
	s.pos = next
	id := toInt(u)
	if id < 0 {
		if err := s.define(-id); err != nil {
			return err
		}
		s.seqDefs = append(s.seqDefs, int32(-id))
		if s.pos != end {
			return s.ifaceErr(f, "type %d defined with %d more bytes in its chunk", -id, end-s.pos)
		}
		if lvl == 0 {
			// The name is kept past this call, not the caller's buffer.
			s.name = append(s.name[:0], s.ifaceName(f)...)
			f.nameLen = -1
			s.pending = true
			return nil
		}
		if s.rejectNested {
			return s.ifaceErr(f, "type %d defined inside an interface value's value (see Limits.AllowNestedTypeDefs)", -id)
		}
		outer := s.ends[lvl-1]
		n, next, ok := uintAt(s.buf, s.pos, outer)
		if !ok {
			return s.ifaceErr(f, "chunk count %s", describeUint(s.buf, s.pos, outer))
		}
		if n > uint64(outer-next) {
			return s.ifaceErr(f, "chunk count %d exceeds the %d bytes left", n, outer-next)
		}
		s.pos = next
		s.ends[lvl] = next + int(n)
		return nil
	}
	p := s.lookup(id)
	if p == nil {
		return s.ifaceErr(f, "type id %d is not defined", id)
	}
	if !p.resolved {
		if err := s.resolve(p); err != nil {
			return s.ifaceErr(f, "type %d: %v", id, err)
		}
	}
	if p.kind == kInterface {
		return s.ifaceErr(f, "value of interface type")
	}
	if len(s.seqDefs) > 0 {
		if id := s.unreached(p); id != 0 {
			return s.ifaceErr(f, "type %d defined before it is not part of its type %d", id, p.id)
		}
		s.seqDefs = s.seqDefs[:0]
	}
	n, next, ok := uintAt(s.buf, s.pos, end)
	if !ok {
		return s.ifaceErr(f, "byte count %s", describeUint(s.buf, s.pos, end))
	}
	if n > uint64(end-next) {
		return s.ifaceErr(f, "byte count %d exceeds the %d bytes left", n, end-next)
	}
	s.pos = next
	s.ends = append(s.ends, next+int(n))
	f.field = stageContent
	return s.top(p)
}

// unreached returns a type of s.seqDefs that p does not reach, or 0.
//
// An Encoder defines there just the types the interface's value needs.
// One that is not needed matters: gob's Decoder, failing on the value
// before it (on an unregistered name, say), drops the rest of the message,
// the definition with it, and reads the next message, where the value goes
// on, as a new value of the type that follows. That type is complete for
// gob only if it needs the dropped definition.
func (s *Stream) unreached(p *plan) int32 {
	s.epoch++
	if s.epoch == 0 {
		for _, q := range s.types {
			q.mark = 0
		}
		s.epoch = 1
	}
	work := append(s.scratch[:0], p)
	p.mark = s.epoch
	visit := func(q *plan) {
		if q.id >= firstUserID && q.mark != s.epoch {
			q.mark = s.epoch
			work = append(work, q)
		}
	}
	for len(work) > 0 {
		q := work[len(work)-1]
		work = work[:len(work)-1]
		switch q.kind {
		case kStruct:
			for _, f := range q.fields {
				visit(f.p)
			}
		case kMap:
			visit(q.key)
			visit(q.elem)
		case kSlice, kArray:
			visit(q.elem)
		}
	}
	clear(work[:cap(work)])
	s.scratch = work[:0]
	for _, id := range s.seqDefs {
		if s.types[id].mark != s.epoch {
			return id
		}
	}
	return 0
}

// ifaceErr is an ErrMalformed about the interface value of frame f.
func (s *Stream) ifaceErr(f *frame, format string, args ...any) error {
	return fmt.Errorf("%w: interface value named %s: %s", ErrMalformed, quote(s.ifaceName(f)), fmt.Sprintf(format, args...))
}

// ifaceName returns (the start of) the name of the interface value of f.
func (s *Stream) ifaceName(f *frame) []byte {
	if f.nameLen < 0 {
		return s.name
	}
	return s.buf[f.left : f.left+uint64(f.nameLen)]
}
