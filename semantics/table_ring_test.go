package semantics

import (
	"context"
	"math/rand"
	"testing"
)

// A session holding many records at once (a ring, then overflow for seqs
// far beyond the others) answers every duplicate from its own record, runs
// nothing twice, and frees exactly the acknowledged completed records.
// The table is checked against a model over random interleavings.
func TestTableManyOutstandingRecordsMatchTheModel(t *testing.T) {
	tests := []struct {
		name   string
		seed   int64
		spread uint64 // how far apart new seqs may be
		ops    int
	}{
		{"dense window", 1, 1, 4000},
		{"sparse seqs", 2, 40, 4000},
		{"beyond the ring", 3, 3 * ringMax, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable(&TableConfig{MaxCalls: 1 << 20})
			id, err := tab.Open()
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			rng := rand.New(rand.NewSource(tt.seed))
			type call struct {
				tk   *Ticket
				done bool
				out  int
			}
			calls := map[uint64]*call{} // seq -> state, for seqs >= ack
			ack, next := uint64(1), uint64(1)
			hdr := func(seq uint64) Header { return Header{Client: id, Seq: seq, Ack: ack, Epoch: tab.Epoch()} }
			for op := 0; op < tt.ops; op++ {
				switch r := rng.Intn(10); {
				case r < 4 && len(calls) < 200: // a new call
					tk, err := tab.Begin(ctx, hdr(next))
					if err != nil || !tk.Run() {
						t.Fatalf("op %d: new seq %d: run=%v err=%v", op, next, tk != nil && tk.Run(), err)
					}
					calls[next] = &call{tk: tk}
					next += 1 + uint64(rng.Int63n(int64(tt.spread)))
				case r < 7: // finish a running call
					for seq, c := range calls {
						if !c.done {
							c.done, c.out = true, int(seq)*7
							tab.Finish(c.tk, Outcome{Reply: c.out})
							break
						}
					}
				case r < 8 && rng.Intn(3) == 0: // give a running call back
					for seq, c := range calls {
						if !c.done {
							tab.Abort(c.tk, nil)
							delete(calls, seq)
							// Its retry runs as new.
							tk, err := tab.Begin(ctx, hdr(seq))
							if err != nil || !tk.Run() {
								t.Fatalf("op %d: retry of aborted seq %d: %v", op, seq, err)
							}
							calls[seq] = &call{tk: tk}
							break
						}
					}
				case r < 9: // a duplicate of a completed call
					for seq, c := range calls {
						if c.done {
							tk, err := tab.Begin(ctx, hdr(seq))
							if err != nil || tk.Run() || tk.Cached().Reply != c.out {
								t.Fatalf("op %d: duplicate of seq %d: %v, %v", op, seq, tk, err)
							}
							break
						}
					}
				default: // the client acknowledges up to its first call not done
					newAck := next
					for seq, c := range calls {
						if !c.done && seq < newAck {
							newAck = seq
						}
					}
					for seq := range calls {
						if seq < newAck {
							delete(calls, seq)
						}
					}
					ack = newAck
					// Any header carries the ack; use a duplicate of a call
					// still held, or a new call when none is.
					tk, err := tab.Begin(ctx, hdr(max(next, ack)))
					if err != nil || !tk.Run() {
						t.Fatalf("op %d: new call carrying ack %d: %v", op, ack, err)
					}
					calls[max(next, ack)] = &call{tk: tk}
					next = max(next, ack) + 1
				}
				tab.mu.Lock()
				held := tab.sessions[id].count()
				tab.mu.Unlock()
				if held != len(calls) {
					t.Fatalf("op %d: table holds %d records, model %d", op, held, len(calls))
				}
			}
			// Stale seqs are refused, never run.
			if ack > 1 {
				if _, err := tab.Begin(ctx, hdr(ack-1)); ClassOf(err) != ClassRejected {
					t.Errorf("seq below ack: %v, want ErrStale", err)
				}
			}
		})
	}
}
