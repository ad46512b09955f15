//go:build linux

package hostile

// A writer of gob streams, written from the format's description
// (GOROOT/src/encoding/gob/doc.go) rather than with encoding/gob's
// encoder, so that an attack can say what no encoder would: a count that
// no bytes follow, a type name with a newline, a million nested values.
//
// A stream is a sequence of messages, each a length (an unsigned integer)
// and that many bytes. A message either defines a type (a negative type id,
// then the wireType value describing it) or carries a value (the type id,
// then the value).

// Built-in gob type ids.
const (
	tBool   = 1
	tInt    = 2
	tUint   = 3
	tBytes  = 5
	tString = 6
)

// appendUint appends x as a gob unsigned integer: one byte below 128,
// else the negated byte count and the big-endian bytes.
func appendUint(b []byte, x uint64) []byte {
	if x < 0x80 {
		return append(b, byte(x))
	}
	n := 0
	for y := x; y > 0; y >>= 8 {
		n++
	}
	b = append(b, byte(256-n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(x>>(8*i)))
	}
	return b
}

// appendInt appends x as a gob signed integer: the low bit of the unsigned
// form says whether the rest is complemented.
func appendInt(b []byte, x int64) []byte {
	if x < 0 {
		return appendUint(b, uint64(^x)<<1|1)
	}
	return appendUint(b, uint64(x)<<1)
}

func appendString(b []byte, s string) []byte {
	return append(appendUint(b, uint64(len(s))), s...)
}

// frame prefixes a message body with its length.
func frame(body []byte) []byte {
	return append(appendUint(make([]byte, 0, len(body)+9), uint64(len(body))), body...)
}

// fields writes the field deltas of one struct value: field(i) moves to
// field i (they must come in increasing order), end closes the struct.
// Nested structs get their own fields.
type fields struct {
	b    []byte
	last int
}

func newFields(b []byte) *fields { return &fields{b: b, last: -1} }

func (f *fields) field(i int) *fields {
	f.b = appendUint(f.b, uint64(i-f.last))
	f.last = i
	return f
}

func (f *fields) end() []byte { return append(f.b, 0) }

// wireField is one field of a struct type definition.
type wireField struct {
	name string
	id   int
}

// The fields of gob's wireType, which describes a type: which one is set
// tells the kind.
const (
	wireSlice  = 1
	wireStruct = 2
	wireMap    = 3
)

// commonType appends gob's CommonType{Name, Id} as field 0 of the
// enclosing type value (whose deltas f writes).
func commonType(f *fields, name string, id int) {
	f.field(0)
	c := newFields(f.b)
	if name != "" {
		c.field(0)
		c.b = appendString(c.b, name)
	}
	c.field(1)
	c.b = appendInt(c.b, int64(id))
	f.b = c.end()
}

// defineStruct returns the message defining struct type id.
func defineStruct(id int, name string, fs ...wireField) []byte {
	b := appendInt(nil, int64(-id))
	w := newFields(b).field(wireStruct)
	st := newFields(w.b)
	commonType(st, name, id)
	st.field(1)
	st.b = appendUint(st.b, uint64(len(fs)))
	for _, f := range fs {
		ft := newFields(st.b)
		if f.name != "" {
			ft.field(0)
			ft.b = appendString(ft.b, f.name)
		}
		ft.field(1)
		ft.b = appendInt(ft.b, int64(f.id))
		st.b = ft.end()
	}
	w.b = st.end()
	return frame(w.end())
}

// defineSlice returns the message defining slice type id, of elem.
func defineSlice(id int, name string, elem int) []byte {
	b := appendInt(nil, int64(-id))
	w := newFields(b).field(wireSlice)
	st := newFields(w.b)
	commonType(st, name, id)
	st.field(1)
	st.b = appendInt(st.b, int64(elem))
	w.b = st.end()
	return frame(w.end())
}

// defineMap returns the message defining map type id, from key to elem.
func defineMap(id int, name string, key, elem int) []byte {
	b := appendInt(nil, int64(-id))
	w := newFields(b).field(wireMap)
	mt := newFields(w.b)
	commonType(mt, name, id)
	mt.field(1)
	mt.b = appendInt(mt.b, int64(key))
	mt.field(2)
	mt.b = appendInt(mt.b, int64(elem))
	w.b = mt.end()
	return frame(w.end())
}

// The attacker's type ids. Like gob's encoder, ids start at 65; each stream
// defines the ones it uses, in an order where every type is defined before
// a type that refers to it.
const (
	idStrings     = 65 // []string
	idMetadata    = 66 // map[string][]string
	idClientID    = 67 // semantics.ClientID
	idSemHeader   = 68 // semantics.Header
	idRequest     = 69 // the request header (rpc's wireRequest)
	idStringMap   = 70 // map[string]string
	idStringRows  = 71 // [][]string
	idPutArgs     = 72
	idGetArgs     = 73
	idBatchArgs   = 74
	idPath        = 75
	idOpenArgs    = 76
	idTree        = 77
	idTrees       = 78  // []Tree
	idFirstCustom = 100 // type floods and the like start here
)

// Request header fields, in the order the attacker's type lists them.
const (
	reqServiceMethod = iota
	reqSeq
	reqSem
	reqTimeout
	reqMetadata
)

// requestTypes defines the request header type (net/rpc's Request with
// semrpc's fields) and the types it refers to.
func requestTypes() []byte {
	var b []byte
	b = append(b, defineSlice(idStrings, "[]string", tString)...)
	b = append(b, defineMap(idMetadata, "Metadata", tString, idStrings)...)
	b = append(b, defineStruct(idClientID, "ClientID", wireField{"Hi", tUint}, wireField{"Lo", tUint})...)
	b = append(b, defineStruct(idSemHeader, "Header",
		wireField{"Client", idClientID}, wireField{"Seq", tUint}, wireField{"Ack", tUint}, wireField{"Epoch", tUint})...)
	b = append(b, defineStruct(idRequest, "Request",
		wireField{"ServiceMethod", tString}, wireField{"Seq", tUint}, wireField{"Sem", idSemHeader},
		wireField{"Timeout", tInt}, wireField{"Metadata", idMetadata})...)
	return b
}

// Definitions of the Store service's argument types (idStrings, which
// BatchArgs uses, comes with requestTypes).
func putArgsTypes() []byte {
	return append(defineMap(idStringMap, "map[string]string", tString, tString),
		defineStruct(idPutArgs, "PutArgs", wireField{"Key", tString}, wireField{"Value", tBytes}, wireField{"Tags", idStringMap})...)
}

func getArgsType() []byte { return defineStruct(idGetArgs, "GetArgs", wireField{"Key", tString}) }

func batchArgsTypes() []byte {
	return append(defineSlice(idStringRows, "[][]string", idStrings),
		defineStruct(idBatchArgs, "BatchArgs", wireField{"Keys", idStrings}, wireField{"Rows", idStringRows})...)
}

// pathType defines Path, a recursive type: its Child field is a Path.
func pathType() []byte {
	return defineStruct(idPath, "Path", wireField{"Name", tString}, wireField{"Child", idPath})
}

// treeTypes defines Tree, recursive through a slice of itself.
func treeTypes() []byte {
	return append(defineSlice(idTrees, "[]Tree", idTree),
		defineStruct(idTree, "Tree", wireField{"Name", tString}, wireField{"Kids", idTrees})...)
}

func openArgsType() []byte { return defineStruct(idOpenArgs, "OpenArgs", wireField{"Version", tInt}) }

// semHeader is the at-most-once header of a request.
type semHeader struct {
	hi, lo, seq, ack, epoch uint64
}

// header is one request header value.
type header struct {
	method string
	seq    uint64
	sem    *semHeader
	// metadata, when not nil, is written as is: the body of the map value
	// (its count and entries), so that the count can say anything.
	metadata []byte
}

// headerMessage returns the message carrying h.
func headerMessage(h header) []byte {
	f := newFields(appendInt(nil, idRequest))
	if h.method != "" {
		f.field(reqServiceMethod)
		f.b = appendString(f.b, h.method)
	}
	if h.seq != 0 {
		f.field(reqSeq)
		f.b = appendUint(f.b, h.seq)
	}
	if s := h.sem; s != nil {
		f.field(reqSem)
		sf := newFields(f.b)
		sf.field(0)
		cf := newFields(sf.b)
		cf.field(0)
		cf.b = appendUint(cf.b, s.hi)
		cf.field(1)
		cf.b = appendUint(cf.b, s.lo)
		sf.b = cf.end()
		sf.field(1)
		sf.b = appendUint(sf.b, s.seq)
		sf.field(2)
		sf.b = appendUint(sf.b, s.ack)
		if s.epoch != 0 {
			sf.field(3)
			sf.b = appendUint(sf.b, s.epoch)
		}
		f.b = sf.end()
	}
	if h.metadata != nil {
		f.field(reqMetadata)
		f.b = append(f.b, h.metadata...)
	}
	return frame(f.end())
}

// getBody returns the message carrying GetArgs{Key: key}.
func getBody(key string) []byte {
	f := newFields(appendInt(nil, idGetArgs))
	f.field(0)
	f.b = appendString(f.b, key)
	return frame(f.end())
}

// openBody returns the message carrying OpenArgs{Version: 2}, as semrpc's
// client sends it.
func openBody() []byte {
	f := newFields(appendInt(nil, idOpenArgs))
	f.field(0)
	f.b = appendInt(f.b, 2)
	return frame(f.end())
}

// putBody returns the message carrying PutArgs{Key: key, Value: value},
// with Tags written as is when tags is not nil (the map's count and
// entries).
func putBody(key string, value []byte, tags []byte) []byte {
	f := newFields(appendInt(nil, idPutArgs))
	f.field(0)
	f.b = appendString(f.b, key)
	if value != nil {
		f.field(1)
		f.b = appendString(f.b, string(value))
	}
	if tags != nil {
		f.field(2)
		f.b = append(f.b, tags...)
	}
	return frame(f.end())
}

// batchBody returns the message carrying BatchArgs{Keys: keys, Rows: rows
// empty rows}.
func batchBody(keys []string, rows int) []byte {
	f := newFields(appendInt(nil, idBatchArgs))
	if keys != nil {
		f.field(0)
		f.b = appendUint(f.b, uint64(len(keys)))
		for _, k := range keys {
			f.b = appendString(f.b, k)
		}
	}
	if rows > 0 {
		f.field(1)
		f.b = appendUint(f.b, uint64(rows))
		for range rows {
			f.b = appendUint(f.b, 0)
		}
	}
	return frame(f.end())
}

// pathBody returns the message carrying a Path levels deep below its root:
// each level is the delta to field Child (2) and, after the innermost,
// the end of every struct (0).
func pathBody(levels int) []byte {
	b := appendInt(make([]byte, 0, 2*levels+16), idPath)
	for range levels {
		b = append(b, 2)
	}
	for range levels + 1 {
		b = append(b, 0)
	}
	return frame(b)
}

// valueOfInt returns the message carrying a value of struct type id whose
// first field is an integer x.
func valueOfInt(id int, x int64) []byte {
	f := newFields(appendInt(nil, int64(id)))
	f.field(0)
	f.b = appendInt(f.b, x)
	return frame(f.end())
}

// treeBody returns the message carrying a Tree levels deep below its root,
// one kid a level: the delta to Kids (2), a count of 1, the kid, and after
// the innermost the end of every struct (0).
func treeBody(levels int) []byte {
	b := appendInt(make([]byte, 0, 3*levels+16), idTree)
	for range levels {
		b = append(b, 2, 1)
	}
	for range levels + 1 {
		b = append(b, 0)
	}
	return frame(b)
}
