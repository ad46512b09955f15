package bench

import (
	"context"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// extraGroups are the benchmarks beyond the TCP comparison.
func extraGroups() []Group {
	return []Group{
		{Name: "dedup table", Baseline: -1, Cases: []Case{
			{"Begin+Finish, new call", TableNew},
			{"Begin, duplicate answered", TableDuplicate},
		}},
	}
}

type empty struct{}

// TableNew times admitting and finishing a fresh call in one session.
func TableNew(b *testing.B) {
	t := semantics.NewTable(nil)
	id := semantics.NewClientID()
	ctx := context.Background()
	out := semantics.Outcome{Reply: &empty{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := uint64(i + 1)
		tk, err := t.Begin(ctx, semantics.Header{Client: id, Seq: seq, Ack: seq, Epoch: t.Epoch()})
		if err != nil || !tk.Run() {
			b.Fatal("not admitted as new", err)
		}
		t.Finish(tk, out)
	}
}

// TableDuplicate times a duplicate answered from a completed record.
func TableDuplicate(b *testing.B) {
	t := semantics.NewTable(nil)
	id := semantics.NewClientID()
	ctx := context.Background()
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: t.Epoch()}
	tk, err := t.Begin(ctx, h)
	if err != nil {
		b.Fatal(err)
	}
	t.Finish(tk, semantics.Outcome{Reply: &empty{}})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk, err := t.Begin(ctx, h)
		if err != nil || tk.Run() {
			b.Fatal("duplicate not answered from the table", err)
		}
	}
}

var _ = time.Second
