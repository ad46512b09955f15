package semantics

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
)

const testEpoch = 0x5eed

// fakeClock is a manual clock for tables under test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const testLease = time.Minute

func newTestTable(maxCalls int) (*Table, *fakeClock) {
	clk := newFakeClock()
	tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch, MaxCalls: maxCalls})
	return tb, clk
}

// open opens the sessions of the test clients numbered clients (the numbers
// hdr takes), as Open would with random ids.
func open(t testing.TB, tb *Table, clients ...uint64) {
	t.Helper()
	for _, c := range clients {
		if err := tb.open(ClientID{Lo: c}); err != nil {
			t.Fatalf("open client %d: %v", c, err)
		}
	}
}

func hdr(client, seq, ack uint64) Header {
	return Header{Client: ClientID{Lo: client}, Seq: seq, Ack: ack, Epoch: testEpoch}
}

// intReply makes a distinct reply value for seq.
func intReply(seq uint64) *uint64 { return &seq }

var errApp = errors.New("kv: no such key")

func TestTableScenarios(t *testing.T) {
	type step struct {
		advance time.Duration // clock moves by this much before the request
		h       Header
		want    string // "new" (then Finish), "done", "hold" (new, left running), "err", or "open" or "close" h.Client
		err     error  // with "err": errors.Is target
		reply   uint64 // with "done": the expected reply (the seq it was made for)
		appErr  error  // with "new": the application error to finish with; with "done": expected
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"new then duplicate answered from record", []step{
			{h: hdr(1, 1, 1), want: "new"},
			{h: hdr(1, 1, 1), want: "done", reply: 1},
			{h: hdr(1, 1, 1), want: "done", reply: 1},
		}},
		{"application error cached", []step{
			{h: hdr(1, 1, 1), want: "new", appErr: errApp},
			{h: hdr(1, 1, 1), want: "done", reply: 1, appErr: errApp},
		}},
		{"out of order seqs within the window", []step{
			{h: hdr(1, 3, 1), want: "new"},
			{h: hdr(1, 2, 1), want: "new"},
			{h: hdr(1, 1, 1), want: "new"},
			{h: hdr(1, 2, 1), want: "done", reply: 2},
			{h: hdr(1, 3, 1), want: "done", reply: 3},
			{h: hdr(1, 1, 1), want: "done", reply: 1},
		}},
		{"ack makes lower seqs stale, keeps the rest", []step{
			{h: hdr(1, 1, 1), want: "new"},
			{h: hdr(1, 2, 1), want: "new"},
			{h: hdr(1, 3, 1), want: "new"},
			{h: hdr(1, 4, 3), want: "new"},
			{h: hdr(1, 1, 1), want: "err", err: ErrStale},
			{h: hdr(1, 2, 2), want: "err", err: ErrStale},
			{h: hdr(1, 3, 1), want: "done", reply: 3},
			{h: hdr(1, 4, 1), want: "done", reply: 4},
		}},
		{"stale even while the original runs", []step{
			{h: hdr(1, 1, 1), want: "hold"},
			{h: hdr(1, 2, 2), want: "new"},
			{h: hdr(1, 1, 1), want: "err", err: ErrStale},
		}},
		{"zero client", []step{{h: Header{Seq: 1, Ack: 1, Epoch: testEpoch}, want: "err", err: ErrBadHeader}}},
		{"seq zero", []step{{h: hdr(1, 0, 0), want: "err", err: ErrBadHeader}}},
		{"ack zero", []step{{h: hdr(1, 1, 0), want: "err", err: ErrBadHeader}}},
		{"ack above seq", []step{{h: hdr(1, 1, 2), want: "err", err: ErrBadHeader}}},
		{"wrong epoch", []step{
			{h: Header{Client: ClientID{Lo: 1}, Seq: 1, Ack: 1, Epoch: testEpoch + 1}, want: "err", err: ErrEpochMismatch},
		}},
		{"a session that was never opened is refused whatever the ack", []step{
			{h: hdr(9, 1, 1), want: "err", err: ErrSessionExpired},
			{h: hdr(9, 5, 1), want: "err", err: ErrSessionExpired},
			{h: hdr(9, 5, 3), want: "err", err: ErrSessionExpired},
		}},
		{"refused requests do not open a session", []step{
			{h: hdr(9, 1, 1), want: "err", err: ErrSessionExpired},
			{h: hdr(9, 1, 1), want: "err", err: ErrSessionExpired},
		}},
		{"an opened session starts at seq one", []step{
			{h: hdr(9, 0, 0), want: "open"},
			{h: hdr(9, 1, 1), want: "new"},
			{h: hdr(9, 1, 1), want: "done", reply: 1},
		}},
		{"an opened session may start above seq one", []step{
			{h: hdr(9, 0, 0), want: "open"},
			{h: hdr(9, 5, 3), want: "new"},
			{h: hdr(9, 2, 2), want: "err", err: ErrStale},
		}},
		{"a closed session refuses its retries", []step{
			{h: hdr(1, 1, 1), want: "new"},
			{h: hdr(1, 0, 0), want: "close"},
			{h: hdr(1, 1, 1), want: "err", err: ErrSessionExpired},
			{h: hdr(1, 2, 2), want: "err", err: ErrSessionExpired},
			{h: hdr(2, 1, 1), want: "new"},
		}},
		{"a session opened and never used expires", []step{
			{advance: testLease, h: hdr(1, 1, 1), want: "err", err: ErrSessionExpired},
		}},
		{"idle for the lease expires", []step{
			{h: hdr(1, 1, 1), want: "new"},
			{advance: testLease, h: hdr(1, 2, 2), want: "err", err: ErrSessionExpired},
		}},
		{"idle just under the lease survives", []step{
			{h: hdr(1, 1, 1), want: "new"},
			{advance: testLease - time.Nanosecond, h: hdr(1, 1, 1), want: "done", reply: 1},
		}},
		{"requests renew the lease", []step{
			{h: hdr(1, 1, 1), want: "new"},
			{advance: testLease * 3 / 4, h: hdr(1, 1, 1), want: "done", reply: 1},
			{advance: testLease * 3 / 4, h: hdr(1, 1, 1), want: "done", reply: 1},
			{advance: testLease * 3 / 4, h: hdr(1, 2, 1), want: "new"},
		}},
		{"a running call keeps its session", []step{
			{h: hdr(1, 1, 1), want: "hold"},
			{advance: 3 * testLease, h: hdr(3, 0, 0), want: "open"},
			{h: hdr(3, 1, 1), want: "new"}, // sweeps
			{h: hdr(1, 2, 2), want: "new"}, // would be ErrSessionExpired if swept
		}},
		{"a retry after the lease is refused, not run again, even with ack one", []step{
			{h: hdr(1, 1, 1), want: "new"},
			{advance: testLease, h: hdr(1, 1, 1), want: "err", err: ErrSessionExpired},
			{h: hdr(1, 1, 1), want: "err", err: ErrSessionExpired},
		}},
		{"sessions are independent", []step{
			{h: hdr(1, 1, 1), want: "new"},
			{h: hdr(2, 1, 1), want: "new"},
			{h: hdr(2, 2, 2), want: "new"},
			{h: hdr(1, 1, 1), want: "done", reply: 1},
			{h: hdr(2, 1, 1), want: "err", err: ErrStale},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, clk := newTestTable(0)
			open(t, tb, 1, 2)
			// No step should wait; a bounded ctx turns a wrong wait into a failure.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				switch st.want {
				case "open":
					open(t, tb, st.h.Client.Lo)
					continue
				case "close":
					tb.Close(st.h.Client)
					continue
				}
				tk, err := tb.Begin(ctx, st.h)
				switch st.want {
				case "err":
					if !errors.Is(err, st.err) {
						t.Fatalf("step %d (%v): err = %v, want %v", i, st.h, err, st.err)
					}
					if tk != nil {
						t.Fatalf("step %d: ticket %+v with error", i, tk)
					}
					continue
				case "new", "hold":
					if err != nil || !tk.Run() {
						t.Fatalf("step %d (%v): want NEW, got ticket %+v err %v", i, st.h, tk, err)
					}
					if st.want == "new" {
						tb.Finish(tk, Outcome{Reply: intReply(st.h.Seq), Err: st.appErr})
					}
				case "done":
					if err != nil || tk.Run() {
						t.Fatalf("step %d (%v): want DONE, got ticket %+v err %v", i, st.h, tk, err)
					}
					out := tk.Cached()
					if r, ok := out.Reply.(*uint64); !ok || *r != st.reply {
						t.Fatalf("step %d: reply %v, want %d", i, out.Reply, st.reply)
					}
					if out.Err != st.appErr {
						t.Fatalf("step %d: cached error %v, want exactly %v", i, out.Err, st.appErr)
					}
				default:
					t.Fatalf("bad step %q", st.want)
				}
			}
		})
	}
}

func TestTableFinishRenewsLease(t *testing.T) {
	tb, clk := newTestTable(0)
	open(t, tb, 1)
	ctx := context.Background()
	tk, _ := tb.Begin(ctx, hdr(1, 1, 1))
	clk.Advance(2 * testLease) // a slow method; its session must survive
	tb.Finish(tk, Outcome{Reply: intReply(1)})
	clk.Advance(testLease / 2)
	dup, err := tb.Begin(ctx, hdr(1, 1, 1))
	if err != nil || dup.Run() {
		t.Fatalf("retry shortly after a slow call finished: %+v %v, want DONE", dup, err)
	}
}

func TestTableStats(t *testing.T) {
	clk := newFakeClock()
	tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch, MaxCalls: 1, MaxSessions: 4})
	ctx := context.Background()
	begin := func(h Header) *Ticket {
		tk, _ := tb.Begin(ctx, h)
		return tk
	}
	open(t, tb, 1, 2)                                                // Opened 2
	tb.Finish(begin(hdr(1, 1, 1)), Outcome{})                        // New
	begin(hdr(1, 1, 1))                                              // Duplicates
	tb.Finish(begin(hdr(1, 2, 2)), Outcome{})                        // New
	begin(hdr(1, 1, 1))                                              // Stale
	begin(hdr(1, 1, 2))                                              // BadHeader
	begin(Header{Client: ClientID{Lo: 1}, Seq: 3, Ack: 3, Epoch: 1}) // EpochMismatch
	begin(hdr(9, 1, 1))                                              // Unknown
	hold := begin(hdr(2, 1, 1))                                      // New
	begin(hdr(2, 2, 1))                                              // WindowExceeded (MaxCalls 1)
	tb.Abort(hold, nil)                                              // Aborted
	tb.Restore(hdr(3, 7, 7), Outcome{})                              // Restored
	open(t, tb, 4)                                                   // Opened 3
	tb.Close(ClientID{Lo: 4})                                        // Closed
	tb.Close(ClientID{Lo: 4})                                        // not counted: unknown
	open(t, tb, 5)                                                   // Opened 4 (sessions 1, 2, 3, 5: full)
	running := begin(hdr(5, 1, 1))                                   // New
	open(t, tb, 6)                                                   // Opened 5, Evicted (client 2: no records)
	clk.Advance(testLease)
	open(t, tb, 7) // Opened 6: 1 and 3 expire, 6 expires, 5 runs
	tb.Finish(running, Outcome{})

	got := tb.Stats()
	want := TableStats{New: 4, Duplicates: 1, Stale: 1, Opened: 6, Closed: 1, Expired: 3, Evicted: 1,
		EpochMismatch: 1, Unknown: 1, BadHeader: 1, WindowExceeded: 1, Aborted: 1, Restored: 1, Sessions: 2}
	if got != want {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
	if tb.Len() != 2 {
		t.Fatalf("Len = %d, want 2", tb.Len())
	}
}

func TestTableDefaultsAndRandomEpoch(t *testing.T) {
	a, b := NewTable(nil), NewTable(&TableConfig{})
	if a.Epoch() == 0 || b.Epoch() == 0 || a.Epoch() == b.Epoch() {
		t.Fatalf("epochs %x and %x: want two random non-zero epochs", a.Epoch(), b.Epoch())
	}
	if a.Lease() != DefaultLease || a.MaxCalls() != DefaultMaxCalls || a.MaxSessions() != DefaultMaxSessions {
		t.Fatalf("lease %v maxCalls %d maxSessions %d, want defaults", a.Lease(), a.MaxCalls(), a.MaxSessions())
	}
	c := NewTable(&TableConfig{Lease: time.Second, MaxCalls: 7, MaxSessions: 9})
	if c.Lease() != time.Second || c.MaxCalls() != 7 || c.MaxSessions() != 9 {
		t.Fatalf("lease %v maxCalls %d maxSessions %d, want the configured 1s, 7, 9", c.Lease(), c.MaxCalls(), c.MaxSessions())
	}
	if c := NewTable(&TableConfig{Epoch: 42}); c.Epoch() != 42 {
		t.Fatalf("Epoch = %d, want the configured 42", c.Epoch())
	}
}

// TestTableSweepIsLazy checks that idle sessions nobody asks about are
// dropped by the amortised sweep in Begin, not before a quarter lease.
func TestTableSweepIsLazy(t *testing.T) {
	tb, clk := newTestTable(0)
	ctx := context.Background()
	clk.Advance(testLease) // past the first sweep point
	for c := uint64(1); c <= 100; c++ {
		open(t, tb, c)
		tk, err := tb.Begin(ctx, hdr(c, 1, 1))
		if err != nil {
			t.Fatal(err)
		}
		tb.Finish(tk, Outcome{})
	}
	clk.Advance(testLease)
	if tb.Len() != 100 {
		t.Fatalf("Len = %d before any Begin, want 100 (no background work)", tb.Len())
	}
	open(t, tb, 1000)
	if _, err := tb.Begin(ctx, hdr(1000, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if st := tb.Stats(); st.Expired != 100 || st.Sessions != 1 {
		t.Fatalf("after sweep: Expired %d Sessions %d, want 100 and 1", st.Expired, st.Sessions)
	}
	// That sweep was at 2L. Sessions made now are idle at 3L, but the next
	// sweep is due only at 3L-1ns+L/4 (the one just before 3L resets it).
	finished := func(c uint64) {
		open(t, tb, c)
		tk, err := tb.Begin(ctx, hdr(c, 1, 1))
		if err != nil || !tk.Run() {
			t.Fatalf("client %d: %+v %v", c, tk, err)
		}
		tb.Finish(tk, Outcome{})
	}
	for c := uint64(2000); c < 2010; c++ {
		finished(c)
	}
	clk.Advance(testLease - time.Nanosecond)
	finished(3000) // sweeps; nothing is idle yet
	clk.Advance(time.Nanosecond)
	finished(3001) // 2000..2009 are idle now, but no sweep is due
	if tb.Len() != 13 {
		t.Fatalf("Len = %d, want 13: a sweep ran before a quarter lease had passed", tb.Len())
	}
	clk.Advance(testLease/4 - 2*time.Nanosecond)
	finished(3002)
	if tb.Len() != 14 {
		t.Fatalf("Len = %d, want 14: a sweep ran before a quarter lease had passed", tb.Len())
	}
	clk.Advance(time.Nanosecond)
	finished(3003) // the sweep is due: 2000..2009 go; 1000 is still running and stays
	if st := tb.Stats(); st.Sessions != 5 || st.Expired != 110 {
		t.Fatalf("after the second sweep: Sessions %d Expired %d, want 5 and 110", st.Sessions, st.Expired)
	}
}

func TestTableConcurrentDuplicatesRunOnce(t *testing.T) {
	const n = 32
	tb, _ := newTestTable(0)
	open(t, tb, 1)
	var executed atomic.Int32
	reply := intReply(1)
	replies := make([]any, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			tk, err := tb.Begin(context.Background(), hdr(1, 1, 1))
			if err != nil {
				errs[i] = err
				return
			}
			if tk.Run() {
				executed.Add(1)
				// Hold the call until every other copy is waiting on it,
				// so all of them take the IN FLIGHT path.
				testwait.Until(5*time.Second, func() bool { return tb.Stats().InFlightWaits >= n-1 })
				tb.Finish(tk, Outcome{Reply: reply, Err: errApp})
				replies[i] = reply
				return
			}
			if tk.Cached().Err != errApp {
				errs[i] = tk.Cached().Err
			}
			replies[i] = tk.Cached().Reply
		}(i)
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock")
	}
	if executed.Load() != 1 {
		t.Fatalf("method ran %d times, want 1", executed.Load())
	}
	for i := range replies {
		if errs[i] != nil || replies[i] != reply {
			t.Fatalf("goroutine %d: reply %v err %v, want the one reply", i, replies[i], errs[i])
		}
	}
	if st := tb.Stats(); st.InFlightWaits != n-1 || st.New != 1 {
		t.Fatalf("stats %+v, want %d in-flight waits and 1 new", st, n-1)
	}
}

// TestTableConcurrentClients drives many clients at once, each sending
// every call several times concurrently while its ack advances; it is mostly
// food for -race, but also checks the counts.
func TestTableConcurrentClients(t *testing.T) {
	const clients, calls, copies = 8, 200, 4
	tb, _ := newTestTable(0)
	for c := uint64(1); c <= clients; c++ {
		open(t, tb, c)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var failures atomic.Int32
	fail := func(format string, args ...any) {
		if failures.Add(1) == 1 {
			t.Errorf(format, args...)
		}
	}
	for c := uint64(1); c <= clients; c++ {
		wg.Add(1)
		go func(c uint64) {
			defer wg.Done()
			for seq := uint64(1); seq <= calls; seq++ {
				var runs atomic.Int32
				var inner sync.WaitGroup
				for k := 0; k < copies; k++ {
					inner.Add(1)
					go func() {
						defer inner.Done()
						tk, err := tb.Begin(ctx, hdr(c, seq, seq))
						if err != nil {
							fail("client %d seq %d: %v", c, seq, err)
							return
						}
						if tk.Run() {
							runs.Add(1)
							tb.Finish(tk, Outcome{Reply: intReply(seq)})
							return
						}
						if r := tk.Cached().Reply.(*uint64); *r != seq {
							fail("client %d seq %d: reply %d", c, seq, *r)
						}
					}()
				}
				inner.Wait()
				if runs.Load() != 1 {
					fail("client %d seq %d ran %d times", c, seq, runs.Load())
				}
				if seq > 1 {
					if _, err := tb.Begin(ctx, hdr(c, seq-1, seq-1)); !errors.Is(err, ErrStale) {
						fail("late duplicate of client %d seq %d: %v, want ErrStale", c, seq-1, err)
					}
				}
			}
		}(c)
	}
	wg.Wait()
	st := tb.Stats()
	if st.New != clients*calls || st.Duplicates+st.InFlightWaits != clients*calls*(copies-1) {
		t.Fatalf("stats %+v", st)
	}
}

func TestTableWaitCanceled(t *testing.T) {
	tb, _ := newTestTable(0)
	open(t, tb, 1)
	tk, err := tb.Begin(context.Background(), hdr(1, 1, 1))
	if err != nil || !tk.Run() {
		t.Fatalf("Begin: %v %v", tk, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := tb.Begin(ctx, hdr(1, 1, 1))
		errc <- err
	}()
	testwait.For(t, "the duplicate to wait", func() bool { return tb.Stats().InFlightWaits == 1 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("waiter: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: waiter ignored its context")
	}
	// The original is unaffected.
	tb.Finish(tk, Outcome{Reply: intReply(1)})
	dup, err := tb.Begin(context.Background(), hdr(1, 1, 1))
	if err != nil || dup.Run() || *dup.Cached().Reply.(*uint64) != 1 {
		t.Fatalf("after Finish: %+v %v, want the cached reply", dup, err)
	}
}

func TestTableAbort(t *testing.T) {
	tb, _ := newTestTable(0)
	open(t, tb, 1)
	ctx := context.Background()
	tk, _ := tb.Begin(ctx, hdr(1, 1, 1))
	errc := make(chan error, 1)
	go func() {
		_, err := tb.Begin(ctx, hdr(1, 1, 1))
		errc <- err
	}()
	testwait.For(t, "the duplicate to wait", func() bool { return tb.Stats().InFlightWaits == 1 })
	errDecode := errors.New("gob: bad args")
	tb.Abort(tk, errDecode)
	select {
	case err := <-errc:
		if !errors.Is(err, errDecode) {
			t.Fatalf("waiter: %v, want it to wrap the abort error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: Abort did not release the waiter")
	}
	tb.Finish(tk, Outcome{Reply: intReply(99)}) // ignored: already aborted

	retry, err := tb.Begin(ctx, hdr(1, 1, 1))
	if err != nil || !retry.Run() {
		t.Fatalf("retry after Abort: %+v %v, want NEW", retry, err)
	}
	tb.Finish(retry, Outcome{Reply: intReply(1)})
	tb.Abort(retry, nil)                          // ignored: already finished
	tb.Finish(retry, Outcome{Reply: intReply(2)}) // ignored: already finished
	dup, err := tb.Begin(ctx, hdr(1, 1, 1))
	if err != nil || dup.Run() || *dup.Cached().Reply.(*uint64) != 1 {
		t.Fatalf("duplicate: %+v %v, want the first Finish's reply", dup, err)
	}
	// Finish and Abort of a DONE ticket do nothing.
	tb.Finish(dup, Outcome{Reply: intReply(3)})
	tb.Abort(dup, nil)
	if again, _ := tb.Begin(ctx, hdr(1, 1, 1)); *again.Cached().Reply.(*uint64) != 1 {
		t.Fatalf("reply changed to %d", *again.Cached().Reply.(*uint64))
	}
	if st := tb.Stats(); st.New != 2 || st.Aborted != 1 {
		t.Fatalf("stats %+v, want New 2 Aborted 1", st)
	}
}

func TestTableAbortNilErrorStillFailsWaiters(t *testing.T) {
	tb, _ := newTestTable(0)
	open(t, tb, 1)
	tk, _ := tb.Begin(context.Background(), hdr(1, 1, 1))
	errc := make(chan error, 1)
	go func() {
		_, err := tb.Begin(context.Background(), hdr(1, 1, 1))
		errc <- err
	}()
	testwait.For(t, "the duplicate to wait", func() bool { return tb.Stats().InFlightWaits == 1 })
	tb.Abort(tk, nil)
	if err := <-errc; err == nil {
		t.Fatal("waiter of an aborted call got no error")
	}
}

func TestTableRestore(t *testing.T) {
	tb, _ := newTestTable(0)
	ctx := context.Background()
	tb.Restore(hdr(1, 5, 3), Outcome{Reply: intReply(5), Err: errApp})
	tb.Restore(hdr(1, 4, 3), Outcome{Reply: intReply(4)})
	tb.Restore(hdr(1, 2, 2), Outcome{Reply: intReply(2)})  // below ack 3: ignored
	tb.Restore(hdr(1, 4, 3), Outcome{Reply: intReply(44)}) // already held: ignored
	tb.Restore(hdr(1, 1, 2), Outcome{})                    // malformed: ignored
	tb.Restore(hdr(2, 1, 1), Outcome{Reply: intReply(1)})

	for _, tc := range []struct {
		h      Header
		reply  uint64
		appErr error
	}{
		{hdr(1, 5, 3), 5, errApp},
		{hdr(1, 4, 3), 4, nil},
		{hdr(2, 1, 1), 1, nil},
	} {
		tk, err := tb.Begin(ctx, tc.h)
		if err != nil || tk.Run() {
			t.Fatalf("%v: %+v %v, want DONE", tc.h, tk, err)
		}
		if out := tk.Cached(); *out.Reply.(*uint64) != tc.reply || out.Err != tc.appErr {
			t.Fatalf("%v: cached %+v, want reply %d err %v", tc.h, out, tc.reply, tc.appErr)
		}
	}
	if _, err := tb.Begin(ctx, hdr(1, 2, 2)); !errors.Is(err, ErrStale) {
		t.Fatalf("seq below restored ack: %v, want ErrStale", err)
	}
	if tk, err := tb.Begin(ctx, hdr(1, 6, 3)); err != nil || !tk.Run() {
		t.Fatalf("next seq: %+v %v, want NEW", tk, err)
	}
	if st := tb.Stats(); st.Restored != 3 || st.Sessions != 2 {
		t.Fatalf("stats %+v, want Restored 3 Sessions 2", st)
	}
}

func TestTableCloseLetsRunningCallsFinish(t *testing.T) {
	tb, _ := newTestTable(0)
	open(t, tb, 1)
	ctx := context.Background()
	tk, _ := tb.Begin(ctx, hdr(1, 1, 1))
	errc := make(chan error, 1)
	replyc := make(chan any, 1)
	go func() {
		dup, err := tb.Begin(ctx, hdr(1, 1, 1))
		errc <- err
		if err == nil {
			replyc <- dup.Cached().Reply
		}
	}()
	testwait.For(t, "the duplicate to wait", func() bool { return tb.Stats().InFlightWaits == 1 })
	tb.Close(ClientID{Lo: 1})
	if tb.Len() != 0 {
		t.Fatalf("Len = %d after Close", tb.Len())
	}
	reply := intReply(1)
	tb.Finish(tk, Outcome{Reply: reply})
	if err := <-errc; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if r := <-replyc; r != reply {
		t.Fatalf("waiter got %v, want the original's reply", r)
	}
	if tb.Len() != 0 {
		t.Fatal("Finish after Close revived the session")
	}
	for _, h := range []Header{hdr(1, 1, 1), hdr(1, 2, 2)} {
		if _, err := tb.Begin(ctx, h); !errors.Is(err, ErrSessionExpired) {
			t.Fatalf("%v after Close: %v, want ErrSessionExpired", h, err)
		}
	}
}

func TestTableWindowCap(t *testing.T) {
	const max = 4
	tb, _ := newTestTable(max)
	open(t, tb, 1)
	ctx := context.Background()
	var held []*Ticket
	for seq := uint64(1); seq <= max; seq++ {
		tk, err := tb.Begin(ctx, hdr(1, seq, 1))
		if err != nil || !tk.Run() {
			t.Fatalf("seq %d: %+v %v", seq, tk, err)
		}
		held = append(held, tk)
	}
	_, err := tb.Begin(ctx, hdr(1, max+1, 1))
	if !errors.Is(err, ErrWindowExceeded) || !errors.Is(err, ErrBadHeader) || ClassOf(err) != ClassRejected {
		t.Fatalf("beyond the cap: %v (class %v), want ErrWindowExceeded, rejected", err, ClassOf(err))
	}
	for i, tk := range held {
		tb.Finish(tk, Outcome{Reply: intReply(uint64(i + 1))})
	}
	// Completed but unacknowledged records still count...
	if _, err := tb.Begin(ctx, hdr(1, max+1, 1)); !errors.Is(err, ErrWindowExceeded) {
		t.Fatalf("cap with completed records: %v", err)
	}
	// ...duplicates are still answered...
	if tk, err := tb.Begin(ctx, hdr(1, 2, 1)); err != nil || tk.Run() {
		t.Fatalf("duplicate at the cap: %+v %v", tk, err)
	}
	// ...and an ack makes room.
	if tk, err := tb.Begin(ctx, hdr(1, max+1, 2)); err != nil || !tk.Run() {
		t.Fatalf("after ack: %+v %v, want NEW", tk, err)
	}
}

func TestTableManyCallsKeepLatest(t *testing.T) {
	tb, _ := newTestTable(0)
	open(t, tb, 1)
	ctx := context.Background()
	id := ClientID{Lo: 1}
	records := func() (n int, overflow bool) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		s := tb.sessions[id]
		return s.count(), s.more != nil
	}
	// One call at a time: only the latest record is kept, inline.
	for seq := uint64(1); seq <= 1000; seq++ {
		tk, err := tb.Begin(ctx, hdr(1, seq, seq))
		if err != nil || !tk.Run() {
			t.Fatalf("seq %d: %+v %v", seq, tk, err)
		}
		tb.Finish(tk, Outcome{Reply: intReply(seq)})
		if n, overflow := records(); n != 1 || overflow {
			t.Fatalf("after seq %d: %d records (overflow %v), want 1 inline", seq, n, overflow)
		}
	}
	// A pipeline of 8 outstanding calls: at most 8 records, and once the
	// client acknowledges everything the overflow map is gone.
	const window = 8
	ack := uint64(1001)
	for seq := uint64(1001); seq <= 2000; seq++ {
		if seq >= ack+window {
			ack = seq - window + 1
		}
		tk, err := tb.Begin(ctx, hdr(1, seq, ack))
		if err != nil || !tk.Run() {
			t.Fatalf("seq %d ack %d: %+v %v", seq, ack, tk, err)
		}
		tb.Finish(tk, Outcome{Reply: intReply(seq)})
		if n, _ := records(); n > window {
			t.Fatalf("seq %d: %d records, want at most %d", seq, n, window)
		}
	}
	tk, _ := tb.Begin(ctx, hdr(1, 2001, 2001))
	tb.Finish(tk, Outcome{})
	if n, overflow := records(); n != 1 || overflow {
		t.Fatalf("after acking everything: %d records (overflow %v), want 1 inline", n, overflow)
	}
}

// TestTableAckedWhileRunning pins the case of a client that gave up on a call
// (and so acknowledged it) while the server was still running it.
func TestTableAckedWhileRunning(t *testing.T) {
	tb, _ := newTestTable(0)
	open(t, tb, 1)
	ctx := context.Background()
	slow, _ := tb.Begin(ctx, hdr(1, 1, 1))
	next, _ := tb.Begin(ctx, hdr(1, 2, 2))
	tb.Finish(slow, Outcome{Reply: intReply(1)})
	tb.Finish(next, Outcome{Reply: intReply(2)})
	tb.mu.Lock()
	n := tb.sessions[ClientID{Lo: 1}].count()
	tb.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d records, want 1: the acknowledged call's reply was kept", n)
	}
	if _, err := tb.Begin(ctx, hdr(1, 1, 1)); !errors.Is(err, ErrStale) {
		t.Fatalf("seq 1: %v, want ErrStale", err)
	}
	if tk, _ := tb.Begin(ctx, hdr(1, 2, 2)); tk == nil || *tk.Cached().Reply.(*uint64) != 2 {
		t.Fatalf("seq 2: %+v, want its cached reply", tk)
	}
}

// bigReply is a reply with some weight, for tracking its collection.
//
//lint:ignore U1000 the fields give the reply its size and shape
type bigReply struct {
	buf  [256]byte
	next *bigReply
}

// finishWithTrackedReply runs seq as NEW and finishes it with a reply whose
// collection closes the returned channel.
func finishWithTrackedReply(t *testing.T, tb *Table, h Header) <-chan struct{} {
	t.Helper()
	tk, err := tb.Begin(context.Background(), h)
	if err != nil || !tk.Run() {
		t.Fatalf("%v: %+v %v", h, tk, err)
	}
	freed := make(chan struct{})
	r := &bigReply{}
	runtime.SetFinalizer(r, func(*bigReply) { close(freed) })
	tb.Finish(tk, Outcome{Reply: r})
	return freed
}

func TestTableAckFreesReply(t *testing.T) {
	tb, _ := newTestTable(0)
	open(t, tb, 1)
	freed := finishWithTrackedReply(t, tb, hdr(1, 1, 1))
	collected := func() bool {
		runtime.GC()
		select {
		case <-freed:
			return true
		case <-time.After(10 * time.Millisecond):
			return false
		}
	}
	for i := 0; i < 3; i++ {
		if collected() {
			t.Fatal("reply collected before the client acknowledged it")
		}
	}
	// The next call acknowledges seq 1.
	tk, err := tb.Begin(context.Background(), hdr(1, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	tb.Finish(tk, Outcome{})
	testwait.For(t, "the acknowledged reply to be collected (it is still reachable from the table)", collected)
	runtime.KeepAlive(tb)
}

func TestTableMemoryPerSession(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 sessions")
	}
	const sessions = 100000
	const budget = 200 // bytes per session
	type empty struct{}
	ctx := context.Background()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	tb := NewTable(&TableConfig{Epoch: testEpoch, MaxSessions: sessions})
	for i := uint64(1); i <= sessions; i++ {
		h := Header{Client: ClientID{Hi: i * 0x9e3779b97f4a7c15, Lo: i}, Seq: 1, Ack: 1, Epoch: testEpoch}
		if err := tb.open(h.Client); err != nil {
			t.Fatal(err)
		}
		tk, err := tb.Begin(ctx, h)
		if err != nil || !tk.Run() {
			t.Fatalf("%v: %+v %v", h, tk, err)
		}
		tb.Finish(tk, Outcome{Reply: &empty{}})
	}

	runtime.GC()
	runtime.ReadMemStats(&after)
	if tb.Len() != sessions {
		t.Fatalf("Len = %d, want %d", tb.Len(), sessions)
	}
	runtime.KeepAlive(tb)

	perSession := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / sessions
	t.Logf("%.1f bytes of heap per session", perSession)
	if perSession > budget {
		t.Fatalf("%.1f bytes per session, budget %d", perSession, budget)
	}
}
