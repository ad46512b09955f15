package semantics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
)

const mib = 1 << 20

// newBudgetTable is a test table with the reply budgets given (bytes).
func newBudgetTable(total, perSession int64) (*Table, *fakeClock) {
	clk := newFakeClock()
	tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch,
		MaxReplyBytes: total, MaxSessionReplyBytes: perSession})
	return tb, clk
}

// call makes the call seq of client c (acknowledging below ack) and, if it
// runs, finishes it with a reply charged size bytes. It reports whether the
// method ran, and Begin's error.
func call(t *testing.T, tb *Table, c, seq, ack uint64, size int) (bool, error) {
	t.Helper()
	tk, err := tb.Begin(context.Background(), hdr(c, seq, ack))
	if err != nil {
		return false, err
	}
	if !tk.Run() {
		return false, nil
	}
	tb.Finish(tk, Outcome{Reply: intReply(seq), Size: size})
	return true, nil
}

func wantReplyBudget(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrReplyBudget) || !errors.Is(err, ErrRejected) || ClassOf(err) != ClassRejected {
		t.Fatalf("%s: %v (class %v), want ErrReplyBudget, rejected", what, err, ClassOf(err))
	}
}

// TestReplyBudgetRefusesNewCallsBeyondIt: one session makes 300 calls with
// 1 MiB replies and never acknowledges one, under a 64 MiB budget. The
// calls beyond the budget are refused (not run, ErrReplyBudget), the bytes
// kept stay within the budget plus one reply, and once the client
// acknowledges its calls the bytes go back to zero and calls run again.
func TestReplyBudgetRefusesNewCallsBeyondIt(t *testing.T) {
	tb, _ := newBudgetTable(64*mib, 64*mib)
	open(t, tb, 1)
	ran := 0
	for seq := uint64(1); seq <= 300; seq++ {
		r, err := call(t, tb, 1, seq, 1, mib)
		switch {
		case r:
			ran++
		case seq <= 64:
			t.Fatalf("call %d refused under the budget: %v", seq, err)
		default:
			wantReplyBudget(t, "a call beyond the budget", err)
		}
		if kept := tb.Stats().ReplyBytes; kept > 64*mib+mib {
			t.Fatalf("after call %d: %d bytes kept, budget 64 MiB + one reply", seq, kept)
		}
	}
	st := tb.Stats()
	if ran != 64 || st.New != 64 || st.ReplyBudget != 236 || st.ReplyBytes != 64*mib {
		t.Fatalf("%d calls ran; stats %+v; want 64 run, 236 refused, 64 MiB kept", ran, st)
	}
	// The client acknowledges everything it sent: the bytes are freed, and
	// its next call runs.
	if r, err := call(t, tb, 1, 301, 301, mib); !r || err != nil {
		t.Fatalf("call after the acknowledgement: ran %v, %v", r, err)
	}
	if kept := tb.Stats().ReplyBytes; kept != mib {
		t.Fatalf("%d bytes kept after the ack, want only the last reply's", kept)
	}
}

// TestReplyBudgetOvershootIsBoundedByRunningCalls: admission looks at the
// bytes already kept, so the calls running when the budget is reached may
// take it over, each by its own reply, and no further.
func TestReplyBudgetOvershootIsBoundedByRunningCalls(t *testing.T) {
	tb, _ := newBudgetTable(4*mib, 4*mib)
	open(t, tb, 1)
	ctx := context.Background()
	var running []*Ticket
	for seq := uint64(1); seq <= 6; seq++ { // all admitted: nothing is kept yet
		tk, err := tb.Begin(ctx, hdr(1, seq, 1))
		if err != nil || !tk.Run() {
			t.Fatalf("call %d: %+v %v", seq, tk, err)
		}
		running = append(running, tk)
	}
	for _, tk := range running {
		tb.Finish(tk, Outcome{Size: mib})
	}
	if kept := tb.Stats().ReplyBytes; kept != 6*mib {
		t.Fatalf("%d bytes kept, want the 6 MiB of the six calls that were running", kept)
	}
	_, err := call(t, tb, 1, 7, 1, mib)
	wantReplyBudget(t, "a call after the overshoot", err)
}

// TestSessionReplyBudgetLeavesOtherSessionsWorking: a session at its own
// budget is refused while another session's calls still run.
func TestSessionReplyBudgetLeavesOtherSessionsWorking(t *testing.T) {
	tb, _ := newBudgetTable(64*mib, 4*mib)
	open(t, tb, 1, 2)
	for seq := uint64(1); seq <= 4; seq++ {
		if r, err := call(t, tb, 1, seq, 1, mib); !r {
			t.Fatalf("call %d of client 1: %v", seq, err)
		}
	}
	_, err := call(t, tb, 1, 5, 1, mib)
	wantReplyBudget(t, "client 1 at its session budget", err)
	for seq := uint64(1); seq <= 3; seq++ {
		if r, err := call(t, tb, 2, seq, 1, mib); !r {
			t.Fatalf("call %d of client 2, under its own budget: %v", seq, err)
		}
	}
	if st := tb.Stats(); st.ReplyBytes != 7*mib || st.ReplyBudget != 1 {
		t.Fatalf("stats %+v, want 7 MiB kept and one refusal", st)
	}
}

// TestDuplicateOfRecordedCallIsAnsweredWhenBudgetIsExhausted: the budget
// refuses new calls only; a retry of a recorded call gets its record, and a
// retry of a running call waits for it, without running either again.
func TestDuplicateOfRecordedCallIsAnsweredWhenBudgetIsExhausted(t *testing.T) {
	tb, _ := newBudgetTable(2*mib, 2*mib)
	open(t, tb, 1)
	ctx := context.Background()
	running, err := tb.Begin(ctx, hdr(1, 1, 1))
	if err != nil || !running.Run() {
		t.Fatal(err)
	}
	for seq := uint64(2); seq <= 3; seq++ {
		if r, err := call(t, tb, 1, seq, 1, mib); !r {
			t.Fatalf("call %d: %v", seq, err)
		}
	}
	_, err = call(t, tb, 1, 4, 1, mib)
	wantReplyBudget(t, "a new call at the budget", err)
	for seq := uint64(2); seq <= 3; seq++ {
		tk, err := tb.Begin(ctx, hdr(1, seq, 1))
		if err != nil || tk.Run() || *tk.Cached().Reply.(*uint64) != seq || tk.Cached().Size != mib {
			t.Fatalf("retry of recorded call %d: %+v %v, want its record", seq, tk, err)
		}
	}
	waited := make(chan *Ticket, 1)
	go func() {
		tk, err := tb.Begin(ctx, hdr(1, 1, 1))
		if err != nil {
			t.Error(err)
		}
		waited <- tk
	}()
	testwait.For(t, "the retry to wait", func() bool { return tb.Stats().InFlightWaits == 1 })
	tb.Finish(running, Outcome{Reply: intReply(1), Size: mib})
	select {
	case tk := <-waited:
		if tk == nil || tk.Run() || *tk.Cached().Reply.(*uint64) != 1 {
			t.Fatalf("retry of the running call: %+v, want its outcome", tk)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock")
	}
	if st := tb.Stats(); st.New != 3 || st.Duplicates != 2 || st.ReplyBytes != 3*mib {
		t.Fatalf("stats %+v, want 3 run, 2 answered from records, 3 MiB kept", st)
	}
}

// TestEndedSessionsFreeTheirReplyBytes: closing a session, its expiry and
// its eviction free the bytes of its records; a call finishing in a session
// that ended, or acknowledged while it ran, keeps nothing.
func TestEndedSessionsFreeTheirReplyBytes(t *testing.T) {
	clk := newFakeClock()
	tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch, MaxSessions: 3})
	ctx := context.Background()
	kept := func(want int64, when string) {
		t.Helper()
		if got := tb.Stats().ReplyBytes; got != want {
			t.Fatalf("%s: %d bytes kept, want %d", when, got, want)
		}
	}
	open(t, tb, 1, 2, 3)
	for c := uint64(1); c <= 3; c++ {
		call(t, tb, c, 1, 1, 100*int(c))
		clk.Advance(time.Second)
	}
	kept(600, "three sessions")
	tb.Close(ClientID{Lo: 2})
	kept(400, "client 2 closed")
	open(t, tb, 4)
	call(t, tb, 4, 1, 1, 0) // a record, so no session is empty
	open(t, tb, 5)          // evicts client 1, the least recently active
	kept(300, "client 1 evicted")
	clk.Advance(testLease)
	open(t, tb, 6) // client 3 expired, and so did 4 and 5
	kept(0, "client 3 expired")

	// A call still running when its session closes keeps nothing.
	tk, err := tb.Begin(ctx, hdr(6, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	tb.Close(ClientID{Lo: 6})
	tb.Finish(tk, Outcome{Size: 1000})
	kept(0, "a call finished after its session closed")

	// Nor does one acknowledged while it ran.
	open(t, tb, 7)
	tk, _ = tb.Begin(ctx, hdr(7, 1, 1))
	call(t, tb, 7, 2, 2, 10)
	tb.Finish(tk, Outcome{Size: 1000})
	kept(10, "a call acknowledged while it ran")
	checkTable(t, tb)
}

// TestRestoreChargesStoredReplies: records a durable store restores count
// against the budget at the length of their stored data.
func TestRestoreChargesStoredReplies(t *testing.T) {
	tb, _ := newBudgetTable(100, 100)
	tb.Restore(hdr(1, 1, 1), Outcome{Reply: &StoredReply{Method: "KV.Put", Data: make([]byte, 94)}})
	tb.Restore(hdr(1, 2, 1), Outcome{Reply: &StoredReply{Method: "KV.Put", Data: make([]byte, 10)}, Size: 7})
	if st := tb.Stats(); st.ReplyBytes != 107 {
		t.Fatalf("%d bytes kept after Restore, want 100 + 7", st.ReplyBytes)
	}
	_, err := call(t, tb, 1, 3, 1, 1)
	wantReplyBudget(t, "a new call over restored records", err)
	if r, err := call(t, tb, 1, 3, 3, 1); !r || err != nil { // acknowledged: freed
		t.Fatalf("call after the ack: %v %v", r, err)
	}
}

// TestReplyBudgetDefaults: the defaults, and a session budget never above
// the table's.
func TestReplyBudgetDefaults(t *testing.T) {
	tb := NewTable(nil)
	if tb.MaxReplyBytes() != DefaultMaxReplyBytes || tb.MaxSessionReplyBytes() != DefaultMaxSessionReplyBytes {
		t.Fatalf("budgets %d and %d, want the defaults", tb.MaxReplyBytes(), tb.MaxSessionReplyBytes())
	}
	if DefaultMaxReplyBytes > 512*mib || DefaultMaxSessionReplyBytes < int64(DefaultMaxCalls)*16<<10 {
		t.Fatal("defaults out of their documented ranges")
	}
	tb = NewTable(&TableConfig{MaxReplyBytes: mib})
	if tb.MaxSessionReplyBytes() != mib {
		t.Fatalf("session budget %d above the table's 1 MiB", tb.MaxSessionReplyBytes())
	}
}
