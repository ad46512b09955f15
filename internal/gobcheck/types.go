package gobcheck

import (
	"fmt"
	"math"
)

// kind is how a wire type's values are laid out.
type kind uint8

const (
	kUint      kind = iota + 1 // bool, int, uint, float: one unsigned integer
	kComplex                   // two unsigned integers
	kBytes                     // string, []byte, and the payload of a GobEncoder, BinaryMarshaler or TextMarshaler: count + bytes
	kInterface                 // name, then (if not nil) type definitions, type id, count, value
	kStruct                    // (field delta, value)* 0
	kSlice                     // count, elements
	kArray                     // count (the array's length), elements
	kMap                       // count, (key, element) pairs
)

var kindNames = [...]string{
	kUint: "integer", kComplex: "complex", kBytes: "byte string", kInterface: "interface",
	kStruct: "struct", kSlice: "slice", kArray: "array", kMap: "map",
}

func (k kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "invalid"
}

// Type ids. 1–8 are the basic types every stream knows; ids up to 63 are
// reserved (gob's Decoder refuses definitions of them, and values of those
// it knows are never sent by an Encoder); the Encoder numbers other types
// from 64 on. Ids are 32-bit on the wire's receiving side: gob's Decoder
// truncates larger ones, so they are refused here.
const (
	firstUserID = 64
	maxTypeID   = math.MaxInt32
)

// plan is what Check needs to know of a wire type to walk its values.
// A stream's plans are built from its type definitions; children are
// linked, and split computed, when a value first needs the type.
type plan struct {
	kind     kind
	resolved bool // children linked; every type reachable is defined
	split    bool // an interface is reachable without entering another interface: a value can be cut by a type definition
	scalar   bool // slice or array of kUint elements: walked in a tight loop
	mark     uint32
	id       int32
	elemID   int32 // slice, array, map
	keyID    int32 // map
	length   int64 // array
	elem     *plan
	key      *plan
	fields   []field // struct
}

type field struct {
	id int32
	p  *plan
}

// The basic types, by id.
var basic = [9]*plan{
	1: {kind: kUint, id: 1, resolved: true},                   // bool
	2: {kind: kUint, id: 2, resolved: true},                   // int
	3: {kind: kUint, id: 3, resolved: true},                   // uint
	4: {kind: kUint, id: 4, resolved: true},                   // float
	5: {kind: kBytes, id: 5, resolved: true},                  // []byte
	6: {kind: kBytes, id: 6, resolved: true},                  // string
	7: {kind: kComplex, id: 7, resolved: true},                // complex
	8: {kind: kInterface, id: 8, resolved: true, split: true}, // interface
}

// Estimated memory a gob Decoder keeps per type definition, and per struct
// field, beyond the names' bytes: its copy of the definition, the compiled
// decoding engine, and map entries for both.
const (
	typeCost  = 256
	fieldCost = 64
)

// cursor reads a type definition from b[pos:end].
type cursor struct {
	b   []byte
	pos int
	end int
}

func (c *cursor) uint(what string) (uint64, error) {
	v, next, ok := uintAt(c.b, c.pos, c.end)
	if !ok {
		return 0, fmt.Errorf("%w: type definition: %s: unsigned integer %s", ErrMalformed, what, describeUint(c.b, c.pos, c.end))
	}
	c.pos = next
	return v, nil
}

func (c *cursor) bytes(what string) ([]byte, error) {
	n, err := c.uint(what + " length")
	if err != nil {
		return nil, err
	}
	if n > uint64(c.end-c.pos) {
		return nil, fmt.Errorf("%w: type definition: %s length %d exceeds the %d bytes left", ErrMalformed, what, n, c.end-c.pos)
	}
	b := c.b[c.pos : c.pos+int(n)]
	c.pos += int(n)
	return b, nil
}

// typeRef reads a type id that a definition refers to.
func (c *cursor) typeRef(what string) (int32, error) {
	u, err := c.uint(what)
	if err != nil {
		return 0, err
	}
	id := toInt(u)
	if id <= 0 || id > maxTypeID {
		return 0, fmt.Errorf("%w: type definition: %s refers to type id %d", ErrMalformed, what, id)
	}
	return int32(id), nil
}

// structFields reads a struct value of n fields from the definition,
// calling fn with each field number present.
func (c *cursor) structFields(what string, n int, fn func(field int) error) error {
	f := -1
	for {
		d, err := c.uint(what + " field delta")
		if err != nil {
			return err
		}
		if d == 0 {
			return nil
		}
		if d > uint64(n-1-f) {
			return fmt.Errorf("%w: type definition: %s field %d+%d out of range (%d fields)", ErrMalformed, what, f, d, n)
		}
		f += int(d)
		if err := fn(f); err != nil {
			return err
		}
	}
}

// typeDef reads a type definition (a wireType value) for id from c, and
// returns its plan and estimated cost. budget is what the stream's type
// memory limit still allows.
func typeDef(c *cursor, id int32, budget int) (*plan, int, error) {
	var p *plan
	cost := typeCost
	spend := func(n int) error {
		cost += n
		if cost > budget {
			return fmt.Errorf("%w: type %d: definitions would hold more than the limit's bytes", ErrTooManyTypes, id)
		}
		return nil
	}
	if err := spend(0); err != nil {
		return nil, 0, err
	}
	// CommonType{Name string; Id int}: the Id repeats the definition's
	// and is not what gob's Decoder goes by; it is read and not checked.
	common := func() error {
		return c.structFields("CommonType", 2, func(f int) error {
			if f == 0 {
				name, err := c.bytes("type name")
				if err != nil {
					return err
				}
				return spend(len(name))
			}
			_, err := c.uint("CommonType.Id")
			return err
		})
	}
	// wireType{ArrayT, SliceT, StructT, MapT, GobEncoderT, BinaryMarshalerT, TextMarshalerT}:
	// exactly one is sent.
	err := c.structFields("wireType", 7, func(f int) error {
		if p != nil {
			return fmt.Errorf("%w: type %d: definition of more than one kind", ErrMalformed, id)
		}
		p = &plan{id: id}
		switch f {
		case 0: // arrayType{CommonType; Elem typeId; Len int}
			p.kind = kArray
			err := c.structFields("arrayType", 3, func(f int) error {
				var err error
				switch f {
				case 0:
					return common()
				case 1:
					p.elemID, err = c.typeRef("array element type")
				default:
					var u uint64
					u, err = c.uint("array length")
					p.length = toInt(u)
				}
				return err
			})
			if err != nil {
				return err
			}
			if p.length < 0 {
				return fmt.Errorf("%w: type %d: array length %d", ErrMalformed, id, p.length)
			}
		case 1: // sliceType{CommonType; Elem typeId}
			p.kind = kSlice
			err := c.structFields("sliceType", 2, func(f int) error {
				if f == 0 {
					return common()
				}
				var err error
				p.elemID, err = c.typeRef("slice element type")
				return err
			})
			if err != nil {
				return err
			}
		case 2: // structType{CommonType; Field []fieldType}
			p.kind = kStruct
			err := c.structFields("structType", 2, func(f int) error {
				if f == 0 {
					return common()
				}
				n, err := c.uint("field count")
				if err != nil {
					return err
				}
				// A field takes at least one byte (its terminating 0).
				if n > uint64(c.end-c.pos) || n > math.MaxInt32 {
					return fmt.Errorf("%w: type %d: field count %d exceeds the %d bytes left", ErrMalformed, id, n, c.end-c.pos)
				}
				if err := spend(int(n) * fieldCost); err != nil {
					return err
				}
				p.fields = make([]field, n)
				for i := range p.fields {
					// fieldType{Name string; Id typeId}
					err := c.structFields("fieldType", 2, func(f int) error {
						if f == 0 {
							name, err := c.bytes("field name")
							if err != nil {
								return err
							}
							return spend(len(name))
						}
						var err error
						p.fields[i].id, err = c.typeRef("field type")
						return err
					})
					if err != nil {
						return err
					}
					if p.fields[i].id == 0 {
						return fmt.Errorf("%w: type %d: field %d has no type", ErrMalformed, id, i)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		case 3: // mapType{CommonType; Key, Elem typeId}
			p.kind = kMap
			err := c.structFields("mapType", 3, func(f int) error {
				var err error
				switch f {
				case 0:
					return common()
				case 1:
					p.keyID, err = c.typeRef("map key type")
				default:
					p.elemID, err = c.typeRef("map element type")
				}
				return err
			})
			if err != nil {
				return err
			}
			if p.keyID == 0 {
				return fmt.Errorf("%w: type %d: map without key type", ErrMalformed, id)
			}
		default: // gobEncoderType{CommonType}: GobEncoder, BinaryMarshaler, TextMarshaler
			p.kind = kBytes
			p.resolved = true
			err := c.structFields("gobEncoderType", 1, func(int) error { return common() })
			if err != nil {
				return err
			}
		}
		if (p.kind == kArray || p.kind == kSlice || p.kind == kMap) && p.elemID == 0 {
			return fmt.Errorf("%w: type %d: %s without element type", ErrMalformed, id, p.kind)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if p == nil {
		return nil, 0, fmt.Errorf("%w: type %d: definition of no kind", ErrMalformed, id)
	}
	return p, cost, nil
}

// lookup returns the plan of a defined type id, or nil.
func (s *Stream) lookup(id int64) *plan {
	if id > 0 && id < int64(len(basic)) {
		return basic[id]
	}
	if id < firstUserID || id > maxTypeID {
		return nil
	}
	if s.last != nil && int64(s.last.id) == id {
		return s.last
	}
	p := s.types[int32(id)]
	if p != nil {
		s.last = p
	}
	return p
}

// planFor returns the plan for values of type id, linking it (and every
// type it reaches) on first use: each must be defined by now.
func (s *Stream) planFor(id int64, what string) (*plan, error) {
	p := s.lookup(id)
	if p == nil {
		return nil, fmt.Errorf("%w: %s: type id %d is not defined", ErrMalformed, what, id)
	}
	if !p.resolved {
		if err := s.resolve(p); err != nil {
			return nil, fmt.Errorf("%w: %s: type %d: %v", ErrMalformed, what, id, err)
		}
	}
	return p, nil
}

// resolve links root and every unresolved type it reaches, and computes
// their split flags. It walks with its own stack: type graphs may be as
// deep as the stream has types.
func (s *Stream) resolve(root *plan) error {
	s.epoch++
	if s.epoch == 0 { // wrapped: clear old marks
		for _, p := range s.types {
			p.mark = 0
		}
		s.epoch = 1
	}
	fresh := s.scratch[:0]
	root.mark = s.epoch
	fresh = append(fresh, root)
	link := func(id int32) (*plan, error) {
		c := s.lookup(int64(id))
		if c == nil {
			return nil, fmt.Errorf("refers to type id %d, which is not defined", id)
		}
		if !c.resolved && c.mark != s.epoch {
			c.mark = s.epoch
			fresh = append(fresh, c)
		}
		return c, nil
	}
	var err error
	for i := 0; i < len(fresh); i++ {
		p := fresh[i]
		switch p.kind {
		case kStruct:
			for j := range p.fields {
				if p.fields[j].p, err = link(p.fields[j].id); err != nil {
					return err
				}
			}
		case kMap:
			if p.key, err = link(p.keyID); err != nil {
				return err
			}
			fallthrough
		case kSlice, kArray:
			if p.elem, err = link(p.elemID); err != nil {
				return err
			}
		}
	}
	// split: the least fixed point, over the fresh plans (the others are done).
	for changed := true; changed; {
		changed = false
		for _, p := range fresh {
			if p.split {
				continue
			}
			sp := false
			switch p.kind {
			case kStruct:
				for _, f := range p.fields {
					if f.p.kind == kInterface || f.p.split {
						sp = true
						break
					}
				}
			case kMap:
				sp = p.key.split || p.elem.split
			case kSlice, kArray:
				sp = p.elem.split
			}
			if sp {
				p.split = true
				changed = true
			}
		}
	}
	for _, p := range fresh {
		p.resolved = true
		p.scalar = (p.kind == kSlice || p.kind == kArray) && p.elem.kind == kUint
	}
	clear(fresh)
	s.scratch = fresh[:0]
	return nil
}
