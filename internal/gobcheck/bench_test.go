package gobcheck

import (
	"fmt"
	"testing"
)

// benchStream returns a Stream that has checked the stream of v up to its
// last message, and that message (v's value).
func benchStream(b *testing.B, v any) (*Stream, []byte) {
	bodies, rest, err := SplitMessages(encodeStream(b, v))
	if err != nil || len(rest) != 0 {
		b.Fatal(err, len(rest))
	}
	s := NewStream(Limits{})
	for _, m := range bodies[:len(bodies)-1] {
		if err := s.Check(m); err != nil {
			b.Fatal(err)
		}
	}
	last := bodies[len(bodies)-1]
	if err := s.Check(last); err != nil {
		b.Fatal(err)
	}
	return s, last
}

func benchCheck(b *testing.B, v any) {
	s, msg := benchStream(b, v)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Check(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckRequestHeader(b *testing.B) {
	benchCheck(b, Request{ServiceMethod: "Arith.Multiply", Seq: 12345})
}

func BenchmarkCheckRequestHeaderMetadata(b *testing.B) {
	benchCheck(b, RequestMeta{
		ServiceMethod: "KV.Put", Seq: 12345,
		Metadata: map[string][]string{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "tenant": {"a"}},
		Deadline: &Deadline{Unix: 1700000000, Ns: 123456789},
	})
}

type Body struct {
	Names []string
	Nums  []int64
	Items []Inner
	Data  []byte
	Meta  map[string][]string
}

// body64K is a struct with slices of about 64 KiB encoded.
func body64K() Body {
	var v Body
	for i := range 1600 {
		v.Names = append(v.Names, fmt.Sprintf("name-%d", i))
		v.Nums = append(v.Nums, int64(i)*1000003)
		v.Items = append(v.Items, Inner{A: i, B: fmt.Sprintf("item %d", i)})
	}
	v.Data = make([]byte, 16<<10)
	v.Meta = map[string][]string{}
	for i := range 100 {
		v.Meta[fmt.Sprint("k", i)] = []string{"a", "b"}
	}
	return v
}

func BenchmarkCheck64KiB(b *testing.B) {
	v := body64K()
	if n := len(encodeStream(b, v)); n < 63<<10 || n > 66<<10 {
		b.Fatalf("body is %d bytes encoded", n)
	}
	benchCheck(b, v)
}
