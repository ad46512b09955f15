package gobcheck

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
	"time"
)

// Types for the round trips.

type Basic struct {
	B    bool
	I    int
	I8   int8
	I16  int16
	I32  int32
	I64  int64
	U    uint
	U8   uint8
	U16  uint16
	U32  uint32
	U64  uint64
	Uptr uintptr
	F32  float32
	F64  float64
	C64  complex64
	C128 complex128
	S    string
	Bs   []byte
}

type Inner struct {
	A int
	B string
}

type Embedded struct {
	Inner
	C  []Inner
	P  *Inner
	PP **Inner
	Q  []*Inner
}

type Arrays struct {
	A [3]int
	B [2]Inner
	C [0]int
	D [4]byte
	E [2][2]string
	F [2][]int
}

type Maps struct {
	M map[string][]string
	N map[Inner][]int
	O map[int]map[string]bool
	P map[string]*Inner
	Q map[[2]int]Inner
	R map[float64]complex128
}

type Node struct {
	Kids []*Node
	V    int
}

type List struct {
	Next *List
	V    int
}

type Tree struct {
	Left, Right *Tree
	Key         string
}

type SelfSlice []SelfSlice

type Unexported struct {
	A int
	b int
	C string
	d []string
	E func()
	F chan int
	G *Inner
}

type Empty struct{}

type WithEmpty struct {
	E  Empty
	A  int
	F  struct{}
	Es []Empty
	Em map[string]Empty
}

type Holder struct {
	X any
	Y any
	N int
}

type Stringer interface{ String() string }

type Named string

func (n Named) String() string { return string(n) }

type HolderS struct {
	S  Stringer
	Xs []any
	M  map[string]any
}

// GobEncoder, BinaryMarshaler and TextMarshaler types.

type GobEnc struct{ v []byte }

func (g GobEnc) GobEncode() ([]byte, error) { return g.v, nil }
func (g *GobEnc) GobDecode(b []byte) error  { g.v = append([]byte(nil), b...); return nil }
func (g GobEnc) String() string             { return string(g.v) }

type BinMarsh struct{ a, b int32 }

func (m BinMarsh) MarshalBinary() ([]byte, error) {
	return []byte{byte(m.a), byte(m.b)}, nil
}

func (m *BinMarsh) UnmarshalBinary(b []byte) error {
	if len(b) != 2 {
		return errors.New("bad BinMarsh")
	}
	m.a, m.b = int32(b[0]), int32(b[1])
	return nil
}

// TextMarsh is a TextMarshaler. gob's Encoder does not use MarshalText
// (the wire has a kind for it, which hand-made tests cover): this goes as
// a struct.
type TextMarsh struct{ S string }

func (m TextMarsh) MarshalText() ([]byte, error) { return []byte("T:" + m.S), nil }
func (m *TextMarsh) UnmarshalText(b []byte) error {
	m.S = strings.TrimPrefix(string(b), "T:")
	return nil
}

type Marshalers struct {
	T   time.Time
	G   GobEnc
	Bm  BinMarsh
	Tm  TextMarsh
	Big *big.Int
	Ts  []time.Time
	Gm  map[string]GobEnc
	Pg  *GobEnc
}

// The request and response headers of net/rpc, and one with metadata.
type Request struct {
	ServiceMethod string
	Seq           uint64
}

type Response struct {
	ServiceMethod string
	Seq           uint64
	Error         string
}

type Deadline struct {
	Unix int64
	Ns   int32
}

type RequestMeta struct {
	ServiceMethod string
	Seq           uint64
	Metadata      map[string][]string
	Deadline      *Deadline
}

type Args struct {
	Key, Value string
	N          int
	Tags       []string
}

func init() {
	gob.Register(Inner{})
	gob.Register(&List{})
	gob.Register([]int{})
	gob.Register([]Inner{})
	gob.Register(map[string]int{})
	gob.Register(map[string]any{})
	gob.Register([]any{})
	gob.Register(Holder{})
	gob.Register(Named(""))
	gob.Register(GobEnc{})
	gob.Register(time.Time{})
	gob.Register(Basic{})
	gob.Register(Maps{})
	gob.Register(Arrays{})
	gob.Register(Empty{})
	gob.Register(WithEmpty{})
	gob.Register(BinMarsh{})
	gob.Register(TextMarsh{})
}

func deepList(n int) *List {
	var l *List
	for i := range n {
		l = &List{Next: l, V: i}
	}
	return l
}

func deepTree(n int) *Tree {
	if n == 0 {
		return nil
	}
	return &Tree{Left: deepTree(n - 1), Right: deepTree(n / 2), Key: fmt.Sprint(n)}
}

func ptr[T any](v T) *T { return &v }

// roundTripValues is every value of the round trips, one stream each, and
// all of them on a single stream too.
func roundTripValues() []any {
	inner := &Inner{A: 3, B: "x"}
	var nilAny any
	return []any{
		// Basic kinds at the top level (singletons).
		true, false, 0, 1, -1, 127, 128, -128, 255, 256, -129,
		math.MaxInt64, math.MinInt64, uint64(math.MaxUint64), uint8(255), int8(-128),
		0.0, 1.5, -2.25, math.Inf(1), math.Inf(-1), math.NaN(), math.Copysign(0, -1),
		math.SmallestNonzeroFloat64, math.MaxFloat64, float32(3.5),
		complex(1, 2), complex64(complex(-1, 0.5)), complex(math.Inf(1), math.NaN()),
		"", "hello", "héllo, 世界 🌍", "\xff\xfe invalid utf-8", strings.Repeat("long ", 1000),
		[]byte{}, []byte{0, 1, 2, 255}, bytes.Repeat([]byte{7}, 70000),
		ptr(42), ptr(ptr("pointer to pointer")),
		// Structs.
		Basic{}, Basic{
			B: true, I: math.MinInt64, I8: -128, I16: math.MaxInt16, I32: math.MinInt32, I64: math.MaxInt64,
			U: math.MaxUint64, U8: 255, U16: 65535, U32: math.MaxUint32, U64: 1 << 63, Uptr: 12345,
			F32: math.MaxFloat32, F64: -math.SmallestNonzeroFloat64, C64: complex(1.5, -2), C128: complex(math.Pi, math.E),
			S: "ünïcödé", Bs: []byte("bytes"),
		},
		Inner{}, Inner{A: -5, B: "b"}, &Inner{A: 1},
		Embedded{Inner: Inner{A: 1, B: "emb"}, C: []Inner{{A: 1}, {}, {B: "z"}}, P: inner, PP: &inner, Q: []*Inner{inner, inner}},
		Arrays{}, Arrays{A: [3]int{1, -2, 3}, B: [2]Inner{{A: 1}, {B: "q"}}, D: [4]byte{1, 2, 3, 4}, E: [2][2]string{{"a", "b"}, {"", "d"}}, F: [2][]int{{1}, nil}},
		[3]int{}, [2]string{"x", "y"}, [5]byte{1, 2, 3, 4, 5}, [2][3]int{{1, 2, 3}, {4, 5, 6}},
		[]int{}, []int{1, 2, 3, math.MaxInt64, math.MinInt64}, []string{"a", "", "c"}, [][]byte{{1}, {}, {2, 3}},
		[]Inner{{A: 1}, {A: 2, B: "two"}}, []*Inner{inner}, [][]string{{"a"}, {}, {"b", "c"}},
		[]float64{0, 1.5, math.Inf(-1)}, []bool{true, false, true}, []complex128{1i, 2},
		// Maps.
		map[string]int{}, map[string]int{"a": 1, "b": 2},
		map[string][]string{"Accept": {"a", "b"}, "Empty": {}, "Nil": nil},
		Maps{
			M: map[string][]string{"k": {"v1", "v2"}},
			N: map[Inner][]int{{A: 1}: {1, 2}, {B: "x"}: nil},
			O: map[int]map[string]bool{1: {"t": true, "f": false}, 2: {}},
			P: map[string]*Inner{"p": inner},
			Q: map[[2]int]Inner{{1, 2}: {A: 3}},
			R: map[float64]complex128{1.5: 2i},
		},
		map[Inner]Inner{{A: 1}: {B: "v"}},
		// Recursive types.
		Node{}, Node{V: 1, Kids: []*Node{{V: 2}, {V: 3, Kids: []*Node{{V: 4}}}}},
		*deepList(50), *deepTree(6),
		SelfSlice{{}, {{}, {{}}}},
		// Unexported, func and chan fields are skipped; empty structs.
		Unexported{A: 1, b: 2, C: "c", d: []string{"d"}, G: &Inner{}},
		Empty{}, WithEmpty{}, WithEmpty{A: 7, Es: []Empty{{}, {}}, Em: map[string]Empty{"e": {}}},
		struct{}{}, struct{ E struct{} }{}, []Empty{{}, {}, {}},
		// Interfaces.
		Holder{}, Holder{X: nil, N: 1},
		Holder{X: Inner{A: 1}, Y: 5},
		Holder{X: []int{1, 2}, Y: map[string]int{"m": 1}},
		Holder{X: "string", Y: 1.5},
		Holder{X: &List{V: 1, Next: &List{V: 2}}},
		Holder{X: Holder{X: Holder{X: Inner{B: "three deep"}}}},
		Holder{X: []any{Inner{A: 1}, nil, "s", []any{map[string]any{"k": Inner{}}}}},
		Holder{X: map[string]any{"a": Inner{A: 1}, "b": []Inner{{}}, "c": nil, "d": GobEnc{v: []byte("g")}}},
		Holder{X: time.Unix(1e9, 5).UTC()},
		Holder{X: Basic{S: "in an interface"}},
		Holder{X: Maps{M: map[string][]string{"x": {"y"}}}},
		Holder{X: WithEmpty{A: 1}, Y: Empty{}},
		Holder{X: BinMarsh{a: 1, b: 2}, Y: TextMarsh{S: "t"}},
		Holder{X: Arrays{A: [3]int{1, 2, 3}}},
		HolderS{S: Named("named"), Xs: []any{Named("a"), Inner{}, nil}, M: map[string]any{"n": Named("b")}},
		ptr(any(Inner{A: 9})), ptr(any(7)), ptr(any("s")), &nilAny,
		[]any{1, "two", Inner{A: 3}, nil, []any{4}},
		map[string]any{"x": 1, "y": []any{Inner{}}, "z": map[string]any{"w": Holder{X: 1}}},
		// GobEncoder, BinaryMarshaler, TextMarshaler.
		time.Time{}, time.Date(2024, 2, 29, 12, 30, 0, 123, time.FixedZone("X", 3600)),
		GobEnc{}, GobEnc{v: []byte("payload")}, BinMarsh{a: 3, b: 4}, TextMarsh{S: "text"},
		big.NewInt(-12345678901234), new(big.Int).Lsh(big.NewInt(1), 300),
		Marshalers{}, Marshalers{
			T: time.Unix(0, 0).UTC(), G: GobEnc{v: []byte{0, 1}}, Bm: BinMarsh{a: 1}, Tm: TextMarsh{S: "x"},
			Big: big.NewInt(7), Ts: []time.Time{time.Unix(1, 0).UTC(), {}}, Gm: map[string]GobEnc{"g": {v: []byte("v")}},
			Pg: &GobEnc{v: []byte("p")},
		},
		// net/rpc's shapes.
		Request{ServiceMethod: "Arith.Multiply", Seq: 1},
		Request{ServiceMethod: "Arith.Multiply", Seq: math.MaxUint64},
		Request{}, Response{ServiceMethod: "Arith.Multiply", Seq: 1, Error: "boom"},
		RequestMeta{ServiceMethod: "KV.Put", Seq: 2, Metadata: map[string][]string{"trace": {"abc"}, "empty": {}}, Deadline: &Deadline{Unix: 1700000000, Ns: 5}},
		RequestMeta{ServiceMethod: "KV.Get", Seq: 3},
		Args{Key: "k", Value: "v", N: -1, Tags: []string{"a", "b"}},
		Args{},
	}
}

// all accepts everything an Encoder sends.
var all = Limits{AllowNestedTypeDefs: true}

func TestRoundTrip(t *testing.T) {
	values := roundTripValues()
	nested := 0
	for i, v := range values {
		stream := encodeStream(t, v)
		if err := checkStream(all, stream); err != nil {
			t.Errorf("value %d (%T %.60v): %v", i, v, v, err)
		}
		// The default limits accept it all but for type definitions in
		// an interface in an interface.
		if err := checkStream(Limits{}, stream); err != nil {
			if !isNested(err) {
				t.Errorf("value %d (%T %.60v), default limits: %v", i, v, v, err)
			}
			nested++
		}
	}
	if nested == 0 || nested > 10 {
		t.Errorf("%d values refused by default for nested definitions", nested)
	}
	// All on one stream: types defined once, then reused, values of
	// different types interleaved; then again.
	twice := append(values, values...)
	if err := checkStream(all, encodeStream(t, twice...)); err != nil {
		t.Errorf("all values on one stream: %v", err)
	}
	// Reversed, so that types first appear in other places (inside an
	// interface rather than at the top, and the other way round).
	rev := make([]any, len(values))
	for i, v := range values {
		rev[len(values)-1-i] = v
	}
	if err := checkStream(all, encodeStream(t, rev...)); err != nil {
		t.Errorf("reversed values on one stream: %v", err)
	}
	// With every type sent once before at the top level, nothing is
	// nested: the default limits accept the lot.
	if err := checkStream(Limits{}, encodeStream(t, append(topLevelTypes(), twice...)...)); err != nil {
		t.Errorf("all values after their types, default limits: %v", err)
	}
}

// topLevelTypes are values of the types that roundTripValues put in
// interfaces, sent first so that no definition is nested.
func topLevelTypes() []any {
	return []any{
		Inner{}, []int{}, []Inner{}, map[string]int{}, map[string]any{}, []any{}, Holder{},
		Named(""), GobEnc{}, time.Time{}, Basic{}, Maps{}, Arrays{}, Empty{}, WithEmpty{},
		BinMarsh{}, TextMarsh{}, List{},
	}
}

// TestRoundTripDecodes makes sure the streams of the round trips are what
// gob itself decodes, so that the test checks the wire of real traffic.
func TestRoundTripDecodes(t *testing.T) {
	for i, v := range roundTripValues() {
		stream := encodeStream(t, v)
		dst := reflect.New(reflect.TypeOf(v))
		if err := gob.NewDecoder(bytes.NewReader(stream)).DecodeValue(dst); err != nil {
			t.Errorf("value %d (%T): gob cannot decode its own stream: %v", i, v, err)
		}
	}
}

// TestRoundTripNestedFirstUse puts types new to the stream in interfaces
// inside interfaces, where the Encoder sends their definitions in the
// middle of the outer interface's value, in chunks.
func TestRoundTripNestedFirstUse(t *testing.T) {
	values := []any{
		Holder{X: Holder{X: Holder{X: Inner{A: 1}}}},
		Holder{X: []any{Holder{X: Inner{}}, Holder{Y: []Inner{{}}}}},
		Holder{X: map[string]any{"a": map[string]any{"b": Basic{}}, "c": Maps{}}},
		Holder{X: []any{Arrays{}, Empty{}, WithEmpty{}, time.Time{}, GobEnc{}, BinMarsh{}, TextMarsh{}}},
		Holder{X: Holder{X: []any{Holder{X: map[string]any{"deep": &List{V: 1}}}}, Y: Holder{Y: Named("y")}}},
		[]any{Holder{X: Holder{X: Inner{}}}, Holder{X: Holder{X: Inner{}}}},
	}
	for i, v := range values {
		stream := encodeStream(t, v, v)
		if err := checkStream(all, stream); err != nil {
			t.Errorf("value %d (%T): %v", i, v, err)
		}
		if err := checkStream(Limits{}, stream); !isNested(err) {
			t.Errorf("value %d (%T), default limits: %v", i, v, err)
		}
		if err := gob.NewDecoder(bytes.NewReader(stream)).Decode(new(any)); err != nil && !strings.Contains(err.Error(), "local interface type") {
			t.Logf("value %d: gob decode into any: %v", i, err)
		}
	}
}

// TestRoundTripQuick encodes random values of several types.
func TestRoundTripQuick(t *testing.T) {
	types := []reflect.Type{
		reflect.TypeFor[Basic](), reflect.TypeFor[Embedded](), reflect.TypeFor[Arrays](),
		reflect.TypeFor[Maps](), reflect.TypeFor[RequestMeta](), reflect.TypeFor[Args](),
		reflect.TypeFor[map[string][]string](), reflect.TypeFor[[]Inner](), reflect.TypeFor[[4][]string](),
		reflect.TypeFor[map[int64][]float32](), reflect.TypeFor[[]map[string]uint16](),
	}
	rnd := rand.New(rand.NewSource(1))
	for _, typ := range types {
		var values []any
		for range 40 {
			v, ok := quick.Value(typ, rnd)
			if !ok {
				t.Fatalf("quick cannot make a %v", typ)
			}
			if gob.NewEncoder(io.Discard).Encode(v.Interface()) != nil {
				continue // a nil pointer in a slice, say
			}
			values = append(values, v.Interface())
		}
		for i, v := range values {
			if err := checkStream(Limits{}, encodeStream(t, v)); err != nil {
				t.Errorf("%v value %d: %v", typ, i, err)
			}
		}
		if err := checkStream(Limits{}, encodeStream(t, values...)); err != nil {
			t.Errorf("%v values on one stream: %v", typ, err)
		}
	}
}

// TestRoundTripDeep checks a list deeper than the default depth is refused
// by default and accepted with a larger MaxDepth.
func TestRoundTripDeep(t *testing.T) {
	stream := encodeStream(t, deepList(500))
	if err := checkStream(Limits{}, stream); !errors.Is(err, ErrTooDeep) {
		t.Errorf("500-deep list with the default limits: %v, want ErrTooDeep", err)
	}
	if err := checkStream(Limits{MaxDepth: 501}, stream); err != nil {
		t.Errorf("500-deep list with MaxDepth 501: %v", err)
	}
	if err := checkStream(Limits{MaxDepth: 499}, stream); !errors.Is(err, ErrTooDeep) {
		t.Errorf("500-deep list with MaxDepth 499: %v, want ErrTooDeep", err)
	}
}

// TestPendingSplit checks that a value whose interface brings a new type
// is split over messages, each accepted, Pending between them.
func TestPendingSplit(t *testing.T) {
	stream := encodeStream(t, Holder{X: Inner{A: 1}})
	bodies, _, err := SplitMessages(stream)
	if err != nil {
		t.Fatal(err)
	}
	// Holder's definition; value up to Inner's definition; rest of value.
	if len(bodies) != 3 {
		t.Fatalf("%d messages, want 3", len(bodies))
	}
	s := NewStream(Limits{})
	want := []bool{false, true, false}
	for i, b := range bodies {
		if err := s.Check(b); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if s.Pending() != want[i] {
			t.Errorf("after message %d: Pending %v, want %v", i, s.Pending(), want[i])
		}
	}
}

func TestSplitMessages(t *testing.T) {
	stream := encodeStream(t, Request{ServiceMethod: "A.B", Seq: 1}, Request{ServiceMethod: "A.B", Seq: 2})
	bodies, rest, err := SplitMessages(stream)
	if err != nil || len(rest) != 0 || len(bodies) != 3 {
		t.Fatalf("SplitMessages: %d bodies, %d rest, %v", len(bodies), len(rest), err)
	}
	for cut := range len(stream) {
		b, rest, err := SplitMessages(stream[:cut])
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		n := 0
		for _, x := range b {
			n += len(x) + 1
		}
		if n+len(rest) != cut {
			t.Fatalf("cut at %d: bodies and rest cover %d bytes", cut, n+len(rest))
		}
	}
	if _, _, err := SplitMessages([]byte{0x80, 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid length prefix: %v", err)
	}
	big := wb{}.u(math.MaxUint64)
	if _, _, err := SplitMessages(big); !errors.Is(err, ErrMalformed) {
		t.Errorf("huge length prefix: %v", err)
	}
}

func TestReadLength(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		n    uint64
		size int
		ok   bool
	}{
		{nil, 0, 1, false},
		{[]byte{0}, 0, 1, true},
		{[]byte{0x7f, 9}, 127, 1, true},
		{[]byte{0xff, 0x80}, 128, 2, true},
		{[]byte{0xfe, 1, 0}, 256, 3, true},
		{[]byte{0xfe, 1}, 0, 3, false},
		{[]byte{0xf8, 1, 2, 3, 4, 5, 6, 7, 8}, 0x0102030405060708, 9, true},
		{[]byte{0xf7, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 0, 0, false},
		{[]byte{0x80}, 0, 0, false},
	} {
		n, size, ok := ReadLength(tc.in)
		if n != tc.n || size != tc.size || ok != tc.ok {
			t.Errorf("ReadLength(% x) = %d, %d, %v; want %d, %d, %v", tc.in, n, size, ok, tc.n, tc.size, tc.ok)
		}
	}
	for _, v := range []uint64{0, 1, 127, 128, 255, 256, 1 << 16, 1<<32 + 5, math.MaxUint64} {
		b := wb{}.u(v)
		n, size, ok := ReadLength(b)
		if !ok || n != v || size != len(b) {
			t.Errorf("ReadLength(% x) = %d, %d, %v; want %d", b, n, size, ok, v)
		}
	}
}

// TestHandDefsMatchEncoder checks the test's hand-made definitions against
// the one in gob's documentation.
func TestHandDefsMatchEncoder(t *testing.T) {
	want := []byte{0xff, 0x81, 0x03, 0x01, 0x01, 0x05, 'P', 'o', 'i', 'n', 't', 0x01, 0xff, 0x82, 0x00,
		0x01, 0x02, 0x01, 0x01, 'X', 0x01, 0x04, 0x00, 0x01, 0x01, 'Y', 0x01, 0x04, 0x00, 0x00, 0x00}
	got := structDef(65, "Point", fdef{"X", 2}, fdef{"Y", 2})
	if !bytes.Equal(got, want) {
		t.Fatalf("structDef:\n got % x\nwant % x", got, want)
	}
	if _, err := checkMsgs(Limits{}, got, []byte{0xff, 0x82, 0x01, 0x2c, 0x01, 0x42, 0x00}); err != nil {
		t.Fatal(err)
	}
}
