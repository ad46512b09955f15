package gobcheck

import (
	"bytes"
	"encoding/gob"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Hand-made streams. Type ids from 64, as an Encoder numbers them.

var (
	innerDef  = structDef(65, "Inner", fdef{"A", 2}, fdef{"B", 6})
	holderDef = structDef(64, "Holder", fdef{"X", 8}, fdef{"Y", 8}, fdef{"N", 2})
	listDef   = structDef(64, "List", fdef{"Next", 64}, fdef{"V", 2})
)

// pkg is this package's path, with which gob.Register names its types.
const pkg = "github.com/semrpc/semrpc/internal/gobcheck"

// nested is a Holder holding a Holder holding an Inner, with Inner defined
// in the middle of the outer interface's value, as an Encoder sends it the
// first time: the value's chunk ends at the definition, and a second chunk
// follows. dn and dm are added to the two chunk counts.
func nested(dn, dm int) [][]byte {
	chunk1 := wb{}.u(1).s(pkg + ".Inner").raw(innerDef...)
	inner := wb{}.u(1).i(5).u(0)
	chunk2 := wb{}.i(65).u(uint64(len(inner))).raw(inner...).u(0)
	value := wb{}.i(64).u(1).s(pkg + ".Holder").i(64).
		u(uint64(len(chunk1) + dn)).raw(chunk1...).
		u(uint64(len(chunk2) + dm)).raw(chunk2...).u(0)
	return [][]byte{holderDef, value}
}

// isNested reports whether err is Check refusing a nested definition.
func isNested(err error) bool {
	return errors.Is(err, ErrMalformed) && strings.Contains(err.Error(), "AllowNestedTypeDefs")
}

func TestNestedHandMadeIsGob(t *testing.T) {
	msgs := nested(0, 0)
	if _, err := checkMsgs(Limits{AllowNestedTypeDefs: true}, msgs...); err != nil {
		t.Fatal(err)
	}
	var stream []byte
	for _, m := range msgs {
		stream = append(wb(stream).u(uint64(len(m))), m...)
	}
	var h Holder
	if err := gob.NewDecoder(bytes.NewReader(stream)).Decode(&h); err != nil {
		t.Fatalf("gob: %v", err)
	}
	if in, ok := h.X.(Holder); !ok || in.X != (Inner{A: 5}) {
		t.Fatalf("gob decoded %+v", h)
	}
	if _, err := checkMsgs(Limits{}, msgs...); !isNested(err) {
		t.Fatalf("default limits: %v", err)
	}
	// A definition in an interface at the top level is not nested.
	if err := checkStream(Limits{}, encodeStream(t, Holder{X: Inner{}})); err != nil {
		t.Fatalf("definition in a top-level interface: %v", err)
	}
	if err := checkStream(Limits{}, encodeStream(t, Holder{X: Holder{X: Inner{}}})); !isNested(err) {
		t.Fatalf("Encoder's nested definition: %v", err)
	}
	// Nor is one in an interface in an interface whose type is known.
	if err := checkStream(Limits{}, encodeStream(t, Holder{X: Inner{}}, Holder{X: Holder{X: Inner{}}})); err != nil {
		t.Fatalf("nested interface of a known type: %v", err)
	}
}

type rejectCase struct {
	name string
	msgs [][]byte
	want error // ErrMalformed if nil
	lim  Limits
}

func msgs(m ...[]byte) [][]byte { return m }

func rejectCases(t testing.TB) []rejectCase {
	mapDef64 := mapDef(64, 6, 2)
	bomb := wb{}.i(64).u(0).u(1e7).s("a").i(1).s("b").i(2)
	// The same, from a real encoding with its count patched.
	enc := encodeStream(t, map[string]int{"a": 1})
	bodies, _, _ := SplitMessages(enc)
	val := bodies[1] // id, 0, count 1, "a", 1
	patched := append(append(wb{}, val[:3]...).u(1e7), val[4:]...)

	metaDef := structDef(64, "RequestMeta", fdef{"ServiceMethod", 6}, fdef{"Seq", 3}, fdef{"Metadata", 65})
	ssDef := sliceDef(66, 6)
	msDef := mapDef(65, 6, 66)

	anyMapDef := mapDef(64, 6, 8)

	deepList := wb{}.i(64)
	for range 100000 {
		deepList = deepList.u(1)
	}
	for range 100001 {
		deepList = deepList.u(0)
	}
	selfSlice := wb{}.i(64).u(0)
	for range 100000 {
		selfSlice = selfSlice.u(1)
	}

	manyTypes := [][]byte{}
	for i := range 5 {
		manyTypes = append(manyTypes, sliceDef(int64(64+i), 2))
	}
	manyFields := make([]fdef, 5000)
	for i := range manyFields {
		manyFields[i] = fdef{strings.Repeat("f", 40), 2}
	}

	ifaceVal := func(name string, id int64, count uint64, content ...byte) []byte {
		return wb{}.i(64).u(1).s(name).i(id).u(count).raw(content...).u(0)
	}
	innerVal := wb{}.u(1).i(5).u(0)

	return []rejectCase{
		{name: "empty message", msgs: msgs(nil)},
		{name: "type id 0", msgs: msgs(wb{}.u(0).u(0))},
		{name: "type id truncated", msgs: msgs(wb{}.raw(0xfe, 1))},

		{name: "map of 10^7 entries, hand-made", msgs: msgs(mapDef64, bomb)},
		{name: "map of 10^7 entries, patched encoding", msgs: msgs(bodies[0], patched)},
		{name: "map of 10^9 entries", msgs: msgs(mapDef64, wb{}.i(64).u(0).u(1e9).s("a").i(1))},
		{name: "map count 2^64-1", msgs: msgs(mapDef64, wb{}.i(64).u(0).u(math.MaxUint64))},
		{name: "map[string][]string field of 10^7 entries", msgs: msgs(ssDef, msDef, metaDef,
			wb{}.i(64).u(1).s("KV.Put").u(1).u(7).u(1).u(1e7).s("k").u(1).s("v").u(0))},
		{name: "slice of 10^7 strings in map value", msgs: msgs(ssDef, msDef, metaDef,
			wb{}.i(64).u(3).u(1).s("k").u(1e7).s("v").u(0))},
		{name: "map[string]any of 10^7 entries", msgs: msgs(anyMapDef, wb{}.i(64).u(0).u(1e7).s("a").u(0).s("b").u(0))},

		{name: "slice count beyond the bytes", msgs: msgs(sliceDef(64, 2), wb{}.i(64).u(0).u(1000).raw(2, 4, 6))},
		{name: "slice of structs count beyond the bytes", msgs: msgs(innerDef, sliceDef(64, 65), wb{}.i(64).u(0).u(1000).u(0).u(0))},
		{name: "slice element cut short", msgs: msgs(sliceDef(64, 2), wb{}.i(64).u(0).u(3).raw(2, 4, 0xfe, 1))},
		{name: "array count beyond the bytes", msgs: msgs(arrayDef(64, 2, 1000), wb{}.i(64).u(0).u(1000).raw(2, 4))},
		{name: "array count other than its length", msgs: msgs(arrayDef(64, 2, 3), wb{}.i(64).u(0).u(2).raw(2, 4))},
		{name: "array of negative length", msgs: msgs(wb{}.i(-64).u(1).common("", 64).u(1).i(2).u(1).i(-1).u(0).u(0))},

		{name: "string length beyond the message", msgs: msgs(wb{}.i(6).u(0).u(100).raw('a', 'b'))},
		{name: "string length 2^63", msgs: msgs(wb{}.i(6).u(0).u(1<<63).raw('a', 'b'))},
		{name: "[]byte length beyond the message", msgs: msgs(wb{}.i(5).u(0).u(1e6).raw('a'))},
		{name: "GobEncoder payload beyond the message", msgs: msgs(gobEncDef(64, 0), wb{}.i(64).u(0).u(50).raw(1, 2, 3))},
		{name: "BinaryMarshaler payload beyond the message", msgs: msgs(gobEncDef(64, 1), wb{}.i(64).u(0).u(50).raw(1, 2, 3))},
		{name: "TextMarshaler payload beyond the message", msgs: msgs(gobEncDef(64, 2), wb{}.i(64).u(0).u(50).raw(1, 2, 3))},
		{name: "string field length beyond the message", msgs: msgs(innerDef, wb{}.i(65).u(2).u(10).raw('x').u(0))},

		{name: "value of an undefined type", msgs: msgs(wb{}.i(99).u(0).u(0))},
		{name: "value of a reserved type id", msgs: msgs(wb{}.i(9).u(0).u(0))},
		{name: "value of wireType's id", msgs: msgs(wb{}.i(16).u(0))},
		{name: "value of CommonType's id", msgs: msgs(wb{}.i(18).u(1).s("x").u(0))},
		{name: "value id beyond 32 bits", msgs: msgs(innerDef, wb{}.i(1<<32+65).u(0))},
		{name: "value whose field type is never defined", msgs: msgs(structDef(64, "S", fdef{"A", 70}), wb{}.i(64).u(0))},
		{name: "value whose type reaches an undefined type", msgs: msgs(sliceDef(66, 99), structDef(65, "T", fdef{"A", 66}), sliceDef(64, 65), wb{}.i(64).u(0).u(0))},
		{name: "value of a recursive type before its cycle is defined", msgs: msgs(structDef(64, "Node", fdef{"Kids", 65}), wb{}.i(64).u(0))},
		{name: "definition with a field of type id 0", msgs: msgs(wb{}.i(-64).u(3).common("S", 64).u(1).u(1).u(1).s("A").u(0).u(0).u(0))},
		{name: "definition with a negative field type", msgs: msgs(structDef(64, "S", fdef{"A", -3}))},
		{name: "definition with a field type beyond 32 bits", msgs: msgs(structDef(64, "S", fdef{"A", 1<<32 + 2}))},
		{name: "slice definition without element type", msgs: msgs(wb{}.i(-64).u(2).common("", 64).u(0).u(0))},
		{name: "map definition without key type", msgs: msgs(wb{}.i(-64).u(4).common("", 64).u(2).i(2).u(0).u(0))},

		{name: "type defined twice", msgs: msgs(innerDef, innerDef)},
		{name: "int redefined", msgs: msgs(sliceDef(2, 2))},
		{name: "interface redefined", msgs: msgs(sliceDef(8, 2))},
		{name: "CommonType redefined", msgs: msgs(structDef(18, "CommonType", fdef{"Name", 6}, fdef{"Id", 2}))},
		{name: "reserved id 63 defined", msgs: msgs(sliceDef(63, 2))},
		{name: "type id beyond 32 bits defined", msgs: msgs(sliceDef(1<<32+64, 2))},
		{name: "definition of no kind", msgs: msgs(wb{}.i(-64).u(0))},
		{name: "definition of two kinds", msgs: msgs(wb{}.i(-64).u(1).common("", 64).u(1).i(2).u(1).i(3).u(0).u(1).common("", 64).u(1).i(2).u(0).u(0))},
		{name: "definition field out of range", msgs: msgs(wb{}.i(-64).u(8).u(0))},
		{name: "definition cut short", msgs: msgs(innerDef[:len(innerDef)-3])},
		{name: "definition with a field count beyond the bytes", msgs: msgs(wb{}.i(-64).u(3).common("S", 64).u(1).u(1e6).u(0))},
		{name: "definition with a name beyond the bytes", msgs: msgs(wb{}.i(-64).u(3).u(1).u(1).u(1e6).raw('a'))},

		{name: "list nested 10^5 deep", msgs: msgs(listDef, deepList), want: ErrTooDeep},
		{name: "list nested 10^5 deep, MaxDepth 10", msgs: msgs(listDef, deepList), want: ErrTooDeep, lim: Limits{MaxDepth: 10}},
		{name: "self-slice nested 10^5 deep", msgs: msgs(sliceDef(64, 64), selfSlice), want: ErrTooDeep},

		{name: "interface byte count beyond the message", msgs: msgs(holderDef, innerDef, ifaceVal("I", 65, 100, innerVal...))},
		{name: "interface byte count short of its value", msgs: msgs(holderDef, innerDef, ifaceVal("I", 65, 2, innerVal...))},
		{name: "interface byte count past its value", msgs: msgs(holderDef, innerDef, append(ifaceVal("I", 65, 4, innerVal...), 0))},
		{name: "interface name beyond the message", msgs: msgs(holderDef, wb{}.i(64).u(1).u(1000).raw('a'))},
		{name: "interface of an undefined type", msgs: msgs(holderDef, ifaceVal("I", 65, 3, innerVal...))},
		{name: "interface of interface type", msgs: msgs(holderDef, ifaceVal("I", 8, 1, 0))},
		{name: "interface type id 0", msgs: msgs(holderDef, ifaceVal("I", 0, 1, 0))},
		{name: "interface definition with bytes after it", msgs: msgs(holderDef, append(wb{}.i(64).u(1).s("I").raw(innerDef...), 0x01))},
		{name: "nested chunk count too large", msgs: nested(0, 1), lim: Limits{AllowNestedTypeDefs: true}},
		{name: "nested chunk count too small", msgs: nested(0, -1), lim: Limits{AllowNestedTypeDefs: true}},
		{name: "nested first chunk count too large", msgs: nested(1, 0), lim: Limits{AllowNestedTypeDefs: true}},
		{name: "nested first chunk count too small", msgs: nested(-1, 0), lim: Limits{AllowNestedTypeDefs: true}},

		{name: "integer longer than 8 bytes", msgs: msgs(wb{}.i(2).u(0).raw(0xf7, 1, 2, 3, 4, 5, 6, 7, 8, 9))},
		{name: "integer first byte 0x80", msgs: msgs(wb{}.i(2).u(0).raw(0x80))},
		{name: "integer cut short", msgs: msgs(wb{}.i(2).u(0).raw(0xfc, 1, 2))},
		{name: "complex cut short", msgs: msgs(wb{}.i(7).u(0).raw(2))},
		{name: "struct delta out of range", msgs: msgs(innerDef, wb{}.i(65).u(3).i(1).u(0))},
		{name: "struct delta 2^64-1", msgs: msgs(innerDef, wb{}.i(65).u(1).i(1).u(math.MaxUint64))},
		{name: "struct without its end", msgs: msgs(innerDef, wb{}.i(65).u(1).i(1))},
		{name: "singleton marker not 0", msgs: msgs(wb{}.i(2).u(1).i(5))},
		{name: "singleton marker missing", msgs: msgs(wb{}.i(2))},

		{name: "bytes after a value", msgs: msgs(wb{}.i(2).u(0).i(5).raw(0))},
		{name: "bytes after a struct value", msgs: msgs(innerDef, wb{}.i(65).u(0).raw(2, 0, 4))},
		{name: "bytes after a definition", msgs: msgs(append(innerDef, 0))},

		{name: "more types than MaxTypes", msgs: manyTypes, want: ErrTooManyTypes, lim: Limits{MaxTypes: 4}},
		{name: "more than 1024 types", msgs: func() [][]byte {
			var m [][]byte
			for i := range 1025 {
				m = append(m, sliceDef(int64(64+i), 2))
			}
			return m
		}(), want: ErrTooManyTypes},
		{name: "type name beyond MaxTypeBytes", msgs: msgs(structDef(64, strings.Repeat("n", 300<<10))), want: ErrTooManyTypes},
		{name: "fields beyond MaxTypeBytes", msgs: msgs(structDef(64, "S", manyFields...)), want: ErrTooManyTypes},
		{name: "types beyond a small MaxTypeBytes", msgs: manyTypes, want: ErrTooManyTypes, lim: Limits{MaxTypeBytes: 4*typeCost + 10}},
	}
}

func TestReject(t *testing.T) {
	for _, tc := range rejectCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = ErrMalformed
			}
			start := time.Now()
			i, err := checkMsgs(tc.lim, tc.msgs...)
			if !errors.Is(err, want) {
				t.Fatalf("error %v, want %v", err, want)
			}
			if i != len(tc.msgs)-1 {
				t.Errorf("message %d of %d failed (%v); want the last", i, len(tc.msgs), err)
			}
			t.Logf("%v", err)
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
			if !strings.HasPrefix(err.Error(), "gobcheck: ") {
				t.Errorf("error text %q", err)
			}
		})
	}
}

// TestRejectFast checks a huge count fails before any walking.
func TestRejectFast(t *testing.T) {
	s := NewStream(Limits{})
	if err := s.Check(mapDef(64, 6, 2)); err != nil {
		t.Fatal(err)
	}
	bomb := wb{}.i(64).u(0).u(1e9).s("a").i(1)
	n := testing.AllocsPerRun(1, func() {
		s2 := *s
		s2.Check(bomb)
	})
	if n > 20 { // the error's; more under -race
		t.Errorf("%v allocations", n)
	}
	// A map of 10^7 entries, all there: accepted (it is what it says).
	big := wb{}.i(64).u(0).u(100000)
	for i := range 100000 {
		big = big.u(0).i(int64(i))
	}
	if err := s.Check(big); err != nil {
		t.Fatalf("a real 10^5-entry map: %v", err)
	}
}

func TestSticky(t *testing.T) {
	s := NewStream(Limits{})
	err := s.Check(wb{}.i(99).u(0))
	if !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	if err2 := s.Check(innerDef); err2 != err {
		t.Fatalf("after an error: %v", err2)
	}
}

// TestErrorQuotes checks text from the message shows quoted and cut short.
func TestErrorQuotes(t *testing.T) {
	name := "\x1b[31mred\n" + strings.Repeat("x", 200)
	_, err := checkMsgs(Limits{}, holderDef, wb{}.i(64).u(1).s(name).i(99).u(1).u(0).u(0))
	if !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\x1b\n") || strings.Contains(msg, strings.Repeat("x", 65)) {
		t.Fatalf("error text has raw or long text: %q", msg)
	}
	if !strings.Contains(msg, `"\x1b[31mred\n`) || !strings.Contains(msg, `..."`) && !strings.Contains(msg, `"...`) {
		t.Fatalf("error text %q", msg)
	}
	// Kept over a pending message.
	s := NewStream(Limits{})
	for _, m := range [][]byte{holderDef, append(wb{}.i(64).u(1).s(name), innerDef...)} {
		if err := s.Check(m); err != nil {
			t.Fatal(err)
		}
	}
	err = s.Check(wb{}.i(99).u(0))
	if !strings.Contains(err.Error(), `\x1b[31mred`) {
		t.Fatalf("error text %q", err)
	}
}

// TestForwardReference: a definition may refer to types defined after it
// (recursive types need that); values need them all.
func TestForwardReference(t *testing.T) {
	node := structDef(64, "Node", fdef{"Kids", 65}, fdef{"V", 2})
	kids := sliceDef(65, 64)
	// Node{Kids: {{}, {Kids: {{V: 3}}}}}
	val := wb{}.i(64).u(1).u(2).u(0).u(1).u(1).u(2).i(3).u(0).u(0).u(0)
	if _, err := checkMsgs(Limits{}, node, kids, val, val); err != nil {
		t.Fatal(err)
	}
}

// TestTextMarshalerWire: the wire's TextMarshaler kind, which gob's
// Encoder does not send, is walked as a byte string.
func TestTextMarshalerWire(t *testing.T) {
	for which := range 3 {
		if _, err := checkMsgs(Limits{}, gobEncDef(64, which), wb{}.i(64).u(0).s("payload")); err != nil {
			t.Errorf("kind %d: %v", which, err)
		}
	}
}

// misreadOnSkip is a stream Check accepts by default that gob's Decoder,
// skipping an interface field the receiver does not have, misreads into a
// map of 2*tid entries: the skip ends at a nested type definition (where
// an Encoder's byte count ends too), and gob reads the next chunk's count
// as a field delta, to a map field, and the nested value's type id as the
// map's count.
func misreadOnSkip(tid int64) [][]byte {
	tval := wb{}.u(1).s("pad").u(0)
	chunk2 := wb{}.i(tid).u(uint64(len(tval))).raw(tval...).u(0)
	m := len(chunk2) // P's field m is the map: the delta gob reads
	fields := []fdef{{"J", 8}}
	for i := 1; i < m; i++ {
		fields = append(fields, fdef{string(rune('a' + i)), 2})
	}
	fields = append(fields, fdef{"M", 65})
	pDef := structDef(64, "P", fields...)
	cDef := structDef(66, "C", fdef{"V", 8})
	tDef := structDef(tid, "T", fdef{"S", 6})
	chunk1 := wb{}.u(1).s("T").raw(tDef...)
	value := wb{}.i(64).u(1).s("C").i(66).
		u(uint64(len(chunk1))).raw(chunk1...).
		u(uint64(len(chunk2))).raw(chunk2...).u(0)
	return [][]byte{mapDef(65, 6, 2), cDef, pDef, value}
}

// TestNestedSkipMisread shows what AllowNestedTypeDefs lets through.
func TestNestedSkipMisread(t *testing.T) {
	msgs := misreadOnSkip(200000)
	if _, err := checkMsgs(Limits{AllowNestedTypeDefs: true}, msgs...); err != nil {
		t.Fatalf("AllowNestedTypeDefs: %v", err)
	}
	if _, err := checkMsgs(Limits{}, msgs...); !isNested(err) {
		t.Fatalf("default limits: %v", err)
	}
	stream := frameAll(msgs)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var r struct{ M map[string]int }
	err := gob.NewDecoder(bytes.NewReader(stream)).Decode(&r)
	runtime.ReadMemStats(&after)
	t.Logf("%d bytes; gob: %v; allocated %d bytes", len(stream), err, after.TotalAlloc-before.TotalAlloc)
}

// discardedDef is a stream that, without the rule that an interface's
// type sequence defines only types its value needs, Check would accept and
// gob's Decoder would read into a map of 2*v entries. The first value's
// interface names a type the receiver never registered: gob fails there
// and drops the rest of that message, which is a definition nothing
// needs. The next message goes on with the interface's value; gob reads it
// as a new value, of the (known) type of the interface's value: the byte
// count as a field delta to a struct, whose next delta leads to a map, and
// the value's integer field as the map's count.
func discardedDef(v int64) [][]byte {
	content := wb{}.u(1).i(v).u(0) // U{A: v}
	n := len(content)
	ufields := []fdef{{"A", 2}}
	for i := 1; i < n-1; i++ {
		ufields = append(ufields, fdef{string(rune('a' + i)), 2})
	}
	ufields = append(ufields, fdef{"S", 67})
	return [][]byte{
		holderDef,
		mapDef(68, 6, 2),
		structDef(67, "S", fdef{"Metadata", 68}),
		structDef(66, "U", ufields...),
		append(wb{}.i(64).u(1).s("unregistered"), sliceDef(69, 2)...),
		wb{}.i(66).u(uint64(n)).raw(content...).u(0),
	}
}

func TestDiscardedDefinition(t *testing.T) {
	msgs := discardedDef(200000)
	if i, err := checkMsgs(Limits{}, msgs...); !errors.Is(err, ErrMalformed) || i != len(msgs)-1 {
		t.Errorf("message %d: %v", i, err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	dec := gob.NewDecoder(bytes.NewReader(frameAll(msgs)))
	var h Holder
	err1 := dec.Decode(&h)
	var r struct {
		S struct{ Metadata map[string]int }
	}
	err2 := dec.Decode(&r)
	runtime.ReadMemStats(&after)
	t.Logf("gob: %v; then %v; allocated %d bytes", err1, err2, after.TotalAlloc-before.TotalAlloc)
}
