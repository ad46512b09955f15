package semantics

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

type benchReply struct{ N int }

// BenchmarkTableNew measures the NEW path: Begin and Finish of a fresh seq
// on one session, each call acknowledging the one before it.
func BenchmarkTableNew(b *testing.B) {
	tb := NewTable(&TableConfig{Epoch: 1})
	ctx := context.Background()
	reply := &benchReply{}
	h := Header{Client: ClientID{Lo: 1}, Epoch: 1}
	open(b, tb, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Seq = uint64(i + 1)
		h.Ack = h.Seq
		tk, err := tb.Begin(ctx, h)
		if err != nil || !tk.Run() {
			b.Fatalf("Begin(%v): %v", h, err)
		}
		tb.Finish(tk, Outcome{Reply: reply})
	}
}

// BenchmarkTableNewSession measures a session's opening and first call: the
// session is created (with a chosen id, not Open's random one, so that the
// cost of crypto/rand is left out), and the map grows with b.N.
func BenchmarkTableNewSession(b *testing.B) {
	tb := NewTable(&TableConfig{Epoch: 1, MaxSessions: 1 << 30})
	ctx := context.Background()
	reply := &benchReply{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := Header{Client: ClientID{Hi: uint64(i) * 0x9e3779b97f4a7c15, Lo: uint64(i) + 1}, Seq: 1, Ack: 1, Epoch: 1}
		if err := tb.open(h.Client); err != nil {
			b.Fatal(err)
		}
		tk, err := tb.Begin(ctx, h)
		if err != nil || !tk.Run() {
			b.Fatalf("Begin(%v): %v", h, err)
		}
		tb.Finish(tk, Outcome{Reply: reply})
	}
}

// BenchmarkTableDuplicate measures a retry answered from a completed record.
func BenchmarkTableDuplicate(b *testing.B) {
	tb := NewTable(&TableConfig{Epoch: 1})
	ctx := context.Background()
	h := Header{Client: ClientID{Lo: 1}, Seq: 1, Ack: 1, Epoch: 1}
	open(b, tb, 1)
	tk, _ := tb.Begin(ctx, h)
	tb.Finish(tk, Outcome{Reply: &benchReply{}})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk, err := tb.Begin(ctx, h)
		if err != nil || tk.Run() {
			b.Fatalf("Begin(%v): %v", h, err)
		}
	}
}

// BenchmarkTableNewParallel is BenchmarkTableNew with one client per
// goroutine, all on one table (so all on its one mutex).
func BenchmarkTableNewParallel(b *testing.B) {
	tb := NewTable(&TableConfig{Epoch: 1})
	ctx := context.Background()
	var clients atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		reply := &benchReply{}
		h := Header{Client: ClientID{Lo: clients.Add(1)}, Epoch: 1}
		if err := tb.open(h.Client); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			h.Seq++
			h.Ack = h.Seq
			tk, err := tb.Begin(ctx, h)
			if err != nil || !tk.Run() {
				b.Errorf("Begin(%v): %v", h, err)
				return
			}
			tb.Finish(tk, Outcome{Reply: reply})
		}
	})
}

// BenchmarkTableDuplicateParallel has every goroutine retry the same
// completed call.
func BenchmarkTableDuplicateParallel(b *testing.B) {
	tb := NewTable(&TableConfig{Epoch: 1})
	ctx := context.Background()
	h := Header{Client: ClientID{Lo: 1}, Seq: 1, Ack: 1, Epoch: 1}
	open(b, tb, 1)
	tk, _ := tb.Begin(ctx, h)
	tb.Finish(tk, Outcome{Reply: &benchReply{}})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, err := tb.Begin(ctx, h)
			if err != nil || tk.Run() {
				b.Errorf("Begin(%v): %v", h, err)
				return
			}
		}
	})
}

// BenchmarkTableOpenClose measures a session's whole life on a table that
// is not full: Open (with its random id), one call, Close.
func BenchmarkTableOpenClose(b *testing.B) {
	tb := NewTable(&TableConfig{Epoch: 1})
	ctx := context.Background()
	reply := &benchReply{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id, err := tb.Open()
		if err != nil {
			b.Fatal(err)
		}
		tk, err := tb.Begin(ctx, Header{Client: id, Seq: 1, Ack: 1, Epoch: 1})
		if err != nil || !tk.Run() {
			b.Fatalf("Begin: %v", err)
		}
		tb.Finish(tk, Outcome{Reply: reply})
		tb.Close(id)
	}
}

// BenchmarkOpenFullTable measures Open on a full table, which evicts the
// least recently active idle session: O(1), whatever MaxSessions (before
// the idle lists it scanned the table, 1–3 ms at 65,536 sessions).
func BenchmarkOpenFullTable(b *testing.B) {
	for _, n := range []int{1024, DefaultMaxSessions} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tb := NewTable(&TableConfig{Epoch: 1, MaxSessions: n})
			for i := 0; i < n; i++ {
				if _, err := tb.Open(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := tb.Open(); err != nil {
					b.Fatal(err)
				}
			}
			if st := tb.Stats(); st.Evicted != uint64(b.N) {
				b.Fatalf("%d evictions for %d Opens", st.Evicted, b.N)
			}
		})
	}
}
