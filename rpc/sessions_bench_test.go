package rpc

import (
	"context"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// BenchmarkAtMostOnceSequential times one caller's at-most-once calls, one
// after another, over TCP loopback: the path whose server side the reply
// budget adds to.
func BenchmarkAtMostOnceSequential(b *testing.B) {
	_, _, addr, _ := startServer(b)
	c := dial(b, addr, WithSemantics(semantics.AtMostOnce()))
	ctx := context.Background()
	var reply int
	if err := c.Call(ctx, "Arith.Add", Args{A: 1, B: 2}, &reply); err != nil {
		b.Fatal(err) // opens the session
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Call(ctx, "Arith.Add", Args{A: 1, B: 2}, &reply); err != nil {
			b.Fatal(err)
		}
	}
}

// argsValue is an ArgsDecoder that copies a ready value.
type argsValue struct{ v Args }

func (a argsValue) DecodeArgs(v any) error {
	*v.(*Args) = a.v
	return nil
}

// BenchmarkAtMostOnceHandle times the server core alone for sequential
// at-most-once calls (Server.Handle: the table's Begin and Finish around
// the method), without a network, so that a few nanoseconds added on the
// server side show.
func BenchmarkAtMostOnceHandle(b *testing.B) {
	s := NewServer(WithLogger(discardLogger()))
	if err := s.Register(new(Arith)); err != nil {
		b.Fatal(err)
	}
	id, err := s.Table().Open()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	h := semantics.Header{Client: id, Epoch: s.Table().Epoch()}
	args := argsValue{Args{A: 1, B: 2}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Seq = uint64(i + 1)
		h.Ack = h.Seq
		if _, err := s.Handle(ctx, "Arith.Add", &h, args); err != nil {
			b.Fatal(err)
		}
	}
}
