package semantics

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestRetryAfterLeaseExpiryIsRefused pins the at-most-once contract across a
// session's expiry: a retry of an executed call that arrives after its
// session expired is refused, even with Ack = 1 (which once made the table
// take it for the first call of a new session and run it again).
func TestRetryAfterLeaseExpiryIsRefused(t *testing.T) {
	tb, clk := newTestTable(0)
	ctx := context.Background()
	id, err := tb.Open()
	if err != nil {
		t.Fatal(err)
	}
	h := Header{Client: id, Seq: 1, Ack: 1, Epoch: tb.Epoch()}
	tk, err := tb.Begin(ctx, h)
	if err != nil || !tk.Run() {
		t.Fatalf("first attempt: %+v %v, want NEW", tk, err)
	}
	tb.Finish(tk, Outcome{Reply: intReply(1)})
	clk.Advance(testLease)
	tk, err = tb.Begin(ctx, h)
	if !errors.Is(err, ErrSessionExpired) || tk != nil {
		t.Fatalf("retry after the lease: %+v %v, want ErrSessionExpired", tk, err)
	}
	if ClassOf(err) != ClassRejected {
		t.Fatalf("class %v, want rejected", ClassOf(err))
	}
	if st := tb.Stats(); st.New != 1 || st.Expired != 1 || st.Unknown != 1 || st.Sessions != 0 {
		t.Fatalf("stats %+v, want 1 new, 1 expired, 1 unknown, no session", st)
	}
}

func TestTableOpenGivesFreshSessions(t *testing.T) {
	tb, _ := newTestTable(0)
	ctx := context.Background()
	seen := make(map[ClientID]bool)
	for i := 0; i < 100; i++ {
		id, err := tb.Open()
		if err != nil || id.IsZero() || seen[id] {
			t.Fatalf("Open %d: %v %v (seen before: %v)", i, id, err, seen[id])
		}
		seen[id] = true
		tk, err := tb.Begin(ctx, Header{Client: id, Seq: 1, Ack: 1, Epoch: tb.Epoch()})
		if err != nil || !tk.Run() {
			t.Fatalf("first call of an opened session: %+v %v, want NEW", tk, err)
		}
		tb.Finish(tk, Outcome{})
	}
	if st := tb.Stats(); st.Opened != 100 || st.Sessions != 100 || st.New != 100 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTableOpenCloseLeavesNoSessions(t *testing.T) {
	tb, _ := newTestTable(0)
	ctx := context.Background()
	ids := make([]ClientID, 500)
	for i := range ids {
		id, err := tb.Open()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		tk, err := tb.Begin(ctx, Header{Client: id, Seq: 1, Ack: 1, Epoch: tb.Epoch()})
		if err != nil {
			t.Fatal(err)
		}
		tb.Finish(tk, Outcome{Reply: intReply(1)})
	}
	for _, id := range ids {
		tb.Close(id)
	}
	if st := tb.Stats(); st.Sessions != 0 || tb.Len() != 0 || st.Opened != 500 || st.Closed != 500 {
		t.Fatalf("after 500 Open and Close: stats %+v, Len %d; want no session", st, tb.Len())
	}
}

// TestTableEvictionChoice checks which session Open evicts from a full
// table: never one with a call running; one holding no records before one
// holding some; the least recently active first.
func TestTableEvictionChoice(t *testing.T) {
	type sess struct {
		client uint64
		state  string // "empty" (opened, no records), "done" (a completed record) or "running"
		age    time.Duration
	}
	tests := []struct {
		name    string
		present []sess // ages in seconds; the lease is a minute
		gone    []uint64
		evicted bool // gone by eviction (else by expiry)
	}{
		{"the oldest empty session", []sess{{1, "empty", 3}, {2, "empty", 5}, {3, "empty", 1}}, []uint64{2}, true},
		{"an empty session before an older one with a record", []sess{{1, "done", 9}, {2, "empty", 1}, {3, "done", 5}}, []uint64{2}, true},
		{"the oldest session with records when none is empty", []sess{{1, "done", 2}, {2, "done", 7}, {3, "done", 4}}, []uint64{2}, true},
		{"never a running session, however old", []sess{{1, "running", 9}, {2, "done", 1}, {3, "running", 8}}, []uint64{2}, true},
		{"never a running session, even if empty ones come first", []sess{{1, "running", 9}, {2, "done", 3}, {3, "empty", 1}}, []uint64{3}, true},
		{"expired sessions go first, and nothing is evicted", []sess{{1, "done", 60}, {2, "empty", 1}, {3, "empty", 61}}, []uint64{1, 3}, false},
		{"a running session outlives its lease and is kept", []sess{{1, "running", 70}, {2, "done", 1}, {3, "done", 2}}, []uint64{3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch, MaxSessions: len(tt.present)})
			ctx := context.Background()
			// Make the sessions oldest first, so that each one's age (in
			// seconds) is how long before the Open it was last active.
			order := append([]sess(nil), tt.present...)
			for i := range order {
				for j := i + 1; j < len(order); j++ {
					if order[j].age > order[i].age {
						order[i], order[j] = order[j], order[i]
					}
				}
			}
			var running []*Ticket
			for i, s := range order {
				if i > 0 {
					clk.Advance((order[i-1].age - s.age) * time.Second)
				}
				open(t, tb, s.client)
				if s.state == "empty" {
					continue
				}
				tk, err := tb.Begin(ctx, hdr(s.client, 1, 1))
				if err != nil || !tk.Run() {
					t.Fatalf("client %d: %+v %v", s.client, tk, err)
				}
				if s.state == "running" {
					running = append(running, tk)
				} else {
					tb.Finish(tk, Outcome{Reply: intReply(1)})
				}
			}
			clk.Advance(order[len(order)-1].age * time.Second)

			if err := tb.open(ClientID{Lo: 100}); err != nil {
				t.Fatalf("Open: %v", err)
			}
			for _, s := range tt.present {
				tb.mu.Lock()
				_, live := tb.sessions[ClientID{Lo: s.client}]
				tb.mu.Unlock()
				if want := !slices.Contains(tt.gone, s.client); live != want {
					t.Errorf("client %d (%s, last active %ds ago): live = %v, want %v", s.client, s.state, s.age, live, want)
				}
			}
			st := tb.Stats()
			wantEvicted, wantExpired := uint64(0), uint64(len(tt.gone))
			if tt.evicted {
				wantEvicted, wantExpired = uint64(len(tt.gone)), 0
			}
			if st.Evicted != wantEvicted || st.Expired != wantExpired {
				t.Fatalf("Evicted %d Expired %d, want %d and %d", st.Evicted, st.Expired, wantEvicted, wantExpired)
			}
			for _, tk := range running {
				tb.Finish(tk, Outcome{})
			}
		})
	}
}

// TestTableEvictionNeverPicksBusySession fills a table with sessions that
// each have a call running: Open is refused (not executed) and nothing is
// evicted; once one call finishes, that session is the one evicted.
func TestTableEvictionNeverPicksBusySession(t *testing.T) {
	clk := newFakeClock()
	tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch, MaxSessions: 3})
	ctx := context.Background()
	var tks []*Ticket
	for c := uint64(1); c <= 3; c++ {
		open(t, tb, c)
		tk, err := tb.Begin(ctx, hdr(c, 1, 1))
		if err != nil || !tk.Run() {
			t.Fatal(err)
		}
		tks = append(tks, tk)
	}
	clk.Advance(10 * testLease) // busy sessions do not expire either
	_, err := tb.Open()
	if !errors.Is(err, ErrTooManySessions) || !errors.Is(err, ErrRejected) || ClassOf(err) != ClassRejected {
		t.Fatalf("Open on a full, busy table: %v (class %v), want ErrTooManySessions, rejected", err, ClassOf(err))
	}
	if st := tb.Stats(); st.Sessions != 3 || st.Evicted != 0 || st.Expired != 0 || st.TooMany != 1 || st.Opened != 3 {
		t.Fatalf("stats %+v after a refused Open", st)
	}
	tb.Finish(tks[1], Outcome{Reply: intReply(1)}) // client 2 is no longer busy, and just active
	id, err := tb.Open()
	if err != nil {
		t.Fatalf("Open once a session is idle: %v", err)
	}
	if st := tb.Stats(); st.Evicted != 1 || st.Sessions != 3 {
		t.Fatalf("stats %+v, want one eviction", st)
	}
	for _, c := range []uint64{1, 3} { // still there: their calls finish and are answered
		tb.Finish(tks[c-1], Outcome{Reply: intReply(1)})
		if tk, err := tb.Begin(ctx, hdr(c, 1, 1)); err != nil || tk.Run() {
			t.Fatalf("client %d after the eviction: %+v %v, want DONE", c, tk, err)
		}
	}
	if _, err := tb.Begin(ctx, Header{Client: id, Seq: 1, Ack: 1, Epoch: testEpoch}); err != nil {
		t.Fatalf("new session: %v", err)
	}
}

// TestEvictedSessionRetryIsRefused pins that eviction keeps at-most-once: a
// retry of a completed call whose session was evicted is refused, never
// run again.
func TestEvictedSessionRetryIsRefused(t *testing.T) {
	clk := newFakeClock()
	tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch, MaxSessions: 2})
	ctx := context.Background()
	open(t, tb, 1, 2)
	tk, _ := tb.Begin(ctx, hdr(1, 1, 1))
	tb.Finish(tk, Outcome{Reply: intReply(1)})
	clk.Advance(time.Second)
	tk, _ = tb.Begin(ctx, hdr(2, 1, 1))
	tb.Finish(tk, Outcome{Reply: intReply(1)})
	open(t, tb, 3) // evicts client 1, the least recently active
	for _, h := range []Header{hdr(1, 1, 1), hdr(1, 2, 1), hdr(1, 2, 2)} {
		tk, err := tb.Begin(ctx, h)
		if !errors.Is(err, ErrSessionExpired) || tk != nil {
			t.Fatalf("%v after eviction: %+v %v, want ErrSessionExpired", h, tk, err)
		}
	}
	if st := tb.Stats(); st.New != 2 || st.Evicted != 1 || st.Unknown != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTableOpenCloseConcurrent has sessions open, call, retry and close
// at once on a small table, for -race, and checks that no call ran twice.
func TestTableOpenCloseConcurrent(t *testing.T) {
	const workers, rounds = 8, 200
	tb := NewTable(&TableConfig{Epoch: testEpoch, MaxSessions: 4})
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				id, err := tb.Open()
				if errors.Is(err, ErrTooManySessions) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				h := Header{Client: id, Seq: 1, Ack: 1, Epoch: testEpoch}
				ran := 0
				for k := 0; k < 3; k++ {
					tk, err := tb.Begin(ctx, h)
					if errors.Is(err, ErrSessionExpired) { // evicted by another Open
						break
					}
					if err != nil {
						errc <- err
						return
					}
					if tk.Run() {
						ran++
						tb.Finish(tk, Outcome{})
					}
				}
				if ran > 1 {
					errc <- errors.New("a call ran twice")
					return
				}
				if r%2 == 0 {
					tb.Close(id)
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if n := tb.Len(); n > 4 {
		t.Fatalf("%d sessions, cap 4", n)
	}
}
