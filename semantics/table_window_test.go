package semantics

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// A call its client gave up on (the client's ack passed it) while its
// method still runs does not count against MaxCalls: a client that keeps
// its window is admitted, and a duplicate of the abandoned call is stale.
func TestTableCapIgnoresCallsAcknowledgedWhileRunning(t *testing.T) {
	const max = 4
	tb, _ := newTestTable(max)
	open(t, tb, 1)
	ctx := context.Background()
	var abandoned []*Ticket
	for seq := uint64(1); seq <= max; seq++ {
		tk, err := tb.Begin(ctx, hdr(1, seq, 1))
		if err != nil || !tk.Run() {
			t.Fatalf("seq %d: %+v %v", seq, tk, err)
		}
		abandoned = append(abandoned, tk)
	}
	// The client gave up on 1..4: its ack is 5, and its window holds 5..8.
	var running []*Ticket
	for seq := uint64(max + 1); seq <= 2*max; seq++ {
		tk, err := tb.Begin(ctx, hdr(1, seq, max+1))
		if err != nil || !tk.Run() {
			t.Fatalf("seq %d with %d abandoned calls running: %+v %v, want NEW", seq, max, tk, err)
		}
		running = append(running, tk)
	}
	_, err := tb.Begin(ctx, hdr(1, 2*max+1, max+1))
	if !errors.Is(err, ErrWindowExceeded) || !errors.Is(err, ErrBadHeader) || ClassOf(err) != ClassRejected {
		t.Fatalf("beyond the window: %v, want ErrWindowExceeded", err)
	}
	want := "too many unacknowledged calls in one session (4 held: 4 running, 0 completed awaiting acknowledgement; MaxCalls 4)"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "malformed") {
		t.Fatalf("refusal %q, want it to say %q, and not malformed", err, want)
	}
	if _, err := tb.Begin(ctx, hdr(1, 2, 1)); !errors.Is(err, ErrStale) {
		t.Fatalf("duplicate of an abandoned call: %v, want ErrStale", err)
	}
	for _, tk := range abandoned {
		tb.Finish(tk, Outcome{Reply: intReply(0)})
	}
	for i, tk := range running {
		tb.Finish(tk, Outcome{Reply: intReply(uint64(i))})
	}
	s := tb.sessions[ClientID{Lo: 1}]
	if s.held != max || s.abandoned != 0 || s.running != 0 {
		t.Fatalf("after every call returned: held %d, abandoned %d, running %d; want %d held (5..8, unacknowledged), none abandoned or running",
			s.held, s.abandoned, s.running, max)
	}
}

// A client that keeps its window and gives up on calls at random, while
// their methods run on for a long time, is never refused, whatever the
// order in which the methods return; the table's count of abandoned calls
// always matches its records.
func TestTableClientKeepingItsWindowIsNeverRefused(t *testing.T) {
	for _, window := range []int{1, 4, 16} {
		tb, _ := newTestTable(window)
		open(t, tb, 1)
		rng := rand.New(rand.NewPCG(uint64(window), 7))
		ctx := context.Background()
		type call struct {
			tk       *Ticket
			waiting  bool // its caller still waits for it
			finished bool // its method returned
		}
		calls := map[uint64]*call{}
		next, ack := uint64(1), uint64(1)
		ended := map[uint64]bool{}
		end := func(seq uint64) {
			ended[seq] = true
			for ended[ack] {
				delete(ended, ack)
				ack++
			}
		}
		pick := func(ok func(*call) bool) (uint64, *call) {
			var seqs []uint64
			for seq, c := range calls {
				if ok(c) {
					seqs = append(seqs, seq)
				}
			}
			if len(seqs) == 0 {
				return 0, nil
			}
			seq := seqs[rng.IntN(len(seqs))]
			return seq, calls[seq]
		}
		for op := 0; op < 3000; op++ {
			switch r := rng.IntN(10); {
			case r < 4: // a new call, if the window has room
				if next-ack >= uint64(window) {
					continue
				}
				tk, err := tb.Begin(ctx, hdr(1, next, ack))
				if err != nil || !tk.Run() {
					t.Fatalf("window %d, op %d: seq %d ack %d: %+v %v, want NEW", window, op, next, ack, tk, err)
				}
				calls[next] = &call{tk: tk, waiting: true}
				next++
			case r < 7: // a caller gives up
				if seq, c := pick(func(c *call) bool { return c.waiting }); c != nil {
					c.waiting = false
					end(seq)
				}
			default: // a method returns; rarely one that was given up on
				seq, c := pick(func(c *call) bool { return !c.finished && (c.waiting || rng.IntN(20) == 0) })
				if c == nil {
					continue
				}
				tb.Finish(c.tk, Outcome{Reply: intReply(seq)})
				c.finished = true
				if c.waiting {
					c.waiting = false
					end(seq)
				}
				delete(calls, seq)
			}
			checkAbandoned(t, tb.sessions[ClientID{Lo: 1}])
		}
		if st := tb.Stats(); st.WindowExceeded != 0 {
			t.Fatalf("window %d: %d refusals", window, st.WindowExceeded)
		}
	}
}

// checkAbandoned checks s's count of running records below its ack against
// the records themselves.
func checkAbandoned(t *testing.T, s *serverSession) {
	t.Helper()
	var below, held int32
	look := func(rec *callRecord) {
		if rec.state == recEmpty {
			return
		}
		held++
		if rec.state == recRunning && rec.seq < s.ack {
			below++
		}
	}
	look(&s.one)
	for i := range s.recs() {
		look(&s.recs()[i])
	}
	for _, rec := range s.more {
		look(rec)
	}
	if below != s.abandoned || held != s.held {
		t.Fatalf("session counts %d abandoned, %d held; its records: %d running below ack %d, %d held", s.abandoned, s.held, below, s.ack, held)
	}
}

// An ack that jumps past a whole ring of records counts each running
// record it passes once, those passed before included.
func TestTableAbandonedCountedOnceWhenTheAckJumps(t *testing.T) {
	tb, _ := newTestTable(8)
	open(t, tb, 1)
	ctx := context.Background()
	var tks []*Ticket
	begin := func(seq, ack uint64) {
		t.Helper()
		tk, err := tb.Begin(ctx, hdr(1, seq, ack))
		if err != nil || !tk.Run() {
			t.Fatalf("seq %d ack %d: %+v %v", seq, ack, tk, err)
		}
		tks = append(tks, tk)
	}
	for seq := uint64(1); seq <= 4; seq++ {
		begin(seq, 1)
	}
	s := tb.sessions[ClientID{Lo: 1}]
	begin(5, 3) // gave up on 1 and 2
	checkAbandoned(t, s)
	begin(100, 100) // gave up on every call before 100
	checkAbandoned(t, s)
	if s.abandoned != 5 {
		t.Fatalf("%d abandoned, want 5 (seqs 1-5)", s.abandoned)
	}
	for _, tk := range tks {
		tb.Finish(tk, Outcome{Reply: intReply(0)})
		checkAbandoned(t, s)
	}
	if s.abandoned != 0 || s.held != 1 {
		t.Fatalf("after every method returned: %d abandoned, %d held; want 0 and 1 (seq 100)", s.abandoned, s.held)
	}
}
