package semantics

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// examinedSoFar returns how many sessions the table has looked at to expire or
// evict so far.
func (t *Table) examinedSoFar() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.examined
}

// TestOpenOnAFullTableLooksAtFewSessions pins that making room costs O(1):
// on a full table of DefaultMaxSessions sessions, each Open looks at three
// sessions at most (the fronts of the idle lists) and evicts the least
// recently active session holding no records; an Open that finds every
// session expired looks at each once, and the Opens after it are O(1)
// again.
func TestOpenOnAFullTableLooksAtFewSessions(t *testing.T) {
	const n = DefaultMaxSessions
	clk := newFakeClock()
	tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch})
	ctx := context.Background()
	// Sessions 1..n, one microsecond apart; the odd ones hold a record.
	for c := uint64(1); c <= n; c++ {
		clk.Advance(time.Microsecond)
		open(t, tb, c)
		if c%2 == 1 {
			tk, err := tb.Begin(ctx, hdr(c, 1, 1))
			if err != nil || !tk.Run() {
				t.Fatalf("client %d: %+v %v", c, tk, err)
			}
			tb.Finish(tk, Outcome{Reply: intReply(1)})
		}
	}
	if tb.Len() != n {
		t.Fatalf("Len = %d, want %d", tb.Len(), n)
	}
	const opens = 10000
	before := tb.examinedSoFar()
	for i := 0; i < opens; i++ {
		clk.Advance(time.Microsecond)
		at := tb.examinedSoFar()
		if _, err := tb.Open(); err != nil {
			t.Fatalf("Open %d on a full table: %v", i, err)
		}
		if looked := tb.examinedSoFar() - at; looked > 3 {
			t.Fatalf("Open %d on a full table of %d looked at %d sessions, want at most 3", i, n, looked)
		}
	}
	t.Logf("%d Opens on a full table of %d sessions looked at %d sessions", opens, n, tb.examinedSoFar()-before)
	if st := tb.Stats(); st.Evicted != opens || st.Expired != 0 || st.Sessions != n {
		t.Fatalf("stats %+v, want %d evictions and %d sessions", st, opens, n)
	}
	// The evicted are the oldest empty sessions: 2, 4, ..., 2*opens.
	for c := uint64(1); c <= 2*opens+2; c++ {
		tb.mu.Lock()
		_, live := tb.sessions[ClientID{Lo: c}]
		tb.mu.Unlock()
		if want := c%2 == 1 || c > 2*opens; live != want {
			t.Fatalf("client %d (holding a record: %v): live %v, want %v", c, c%2 == 1, live, want)
		}
	}

	// Every session expired: one Open drops them all, each looked at once.
	clk.Advance(testLease)
	at := tb.examinedSoFar()
	if _, err := tb.Open(); err != nil {
		t.Fatal(err)
	}
	if looked := tb.examinedSoFar() - at; looked > n+2 {
		t.Fatalf("the Open that expired %d sessions looked at %d", n, looked)
	}
	if st := tb.Stats(); st.Expired != n || st.Sessions != 1 {
		t.Fatalf("stats %+v, want %d expired and 1 session", st, n)
	}
}

// checkTable checks the table's bookkeeping against its sessions: each live
// session is on the list its state calls for (none while a call runs),
// each list is ordered by last activity, and the kept bytes add up.
func checkTable(t *testing.T, tb *Table) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	listed := 0
	for _, l := range []uint8{onEmpty, onHolding} {
		var prev *serverSession
		for s := tb.lists[l].front; s != nil; prev, s = s, s.next {
			if s.prev != prev {
				t.Fatalf("list %d: broken back link at %v", l, s.id)
			}
			if s.list != l {
				t.Fatalf("session %v on list %d says it is on %d", s.id, l, s.list)
			}
			if prev != nil && prev.last > s.last {
				t.Fatalf("list %d out of order: %v (last %d) before %v (last %d)", l, prev.id, prev.last, s.id, s.last)
			}
			if tb.sessions[s.id] != s {
				t.Fatalf("session %v on list %d is not in the table", s.id, l)
			}
			listed++
		}
		if tb.lists[l].back != prev {
			t.Fatalf("list %d: back is not the last session", l)
		}
	}
	idle, total := 0, int64(0)
	for id, s := range tb.sessions {
		var want uint8
		switch {
		case s.running > 0:
			want = onNoList
		case s.held == 0:
			want = onEmpty
		default:
			want = onHolding
		}
		if s.list != want || s.id != id {
			t.Fatalf("session %v (id %v, running %d, held %d) is on %d, want %d", id, s.id, s.running, s.held, s.list, want)
		}
		if want != onNoList {
			idle++
		}
		var kept int64
		visit := func(rec *callRecord) {
			if rec.state == recDone {
				kept += int64(rec.size)
			}
		}
		visit(&s.one)
		for i := range s.recs() {
			visit(&s.recs()[i])
		}
		for _, rec := range s.more {
			visit(rec)
		}
		if kept != s.bytes {
			t.Fatalf("session %v: records keep %d bytes, session says %d", id, kept, s.bytes)
		}
		total += s.bytes
	}
	if idle != listed {
		t.Fatalf("%d idle sessions, %d listed", idle, listed)
	}
	if total != tb.replyBytes {
		t.Fatalf("sessions keep %d bytes, table says %d", total, tb.replyBytes)
	}
}

// TestTableEvictionMatchesTheScan drives a small table through random
// opens, calls, duplicates, acks, aborts, closes, restores and the passing
// of time, and checks after each step that the lists are right
// (checkTable), and at each Open on a full table that the lists chose what
// a scan of every session would have: the expired sessions if there are
// any, else the least recently active idle session, one holding no records
// first; and a refusal only when every session has a call running.
func TestTableEvictionMatchesTheScan(t *testing.T) {
	const maxSessions = 12
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x7ab1e))
			clk := newFakeClock()
			tb := NewTable(&TableConfig{Lease: testLease, Now: clk.Now, Epoch: testEpoch, MaxSessions: maxSessions, MaxCalls: 8})
			ctx := context.Background()
			done, cancel := context.WithCancel(ctx)
			cancel()
			type client struct {
				id      uint64
				seq     uint64 // last seq begun
				ack     uint64
				running map[uint64]*Ticket
			}
			var clients []*client
			next := uint64(1)
			for step := 0; step < 3000; step++ {
				clk.Advance(time.Duration(1 + rng.IntN(int(time.Second))))
				switch op := rng.IntN(10); {
				case op == 0 || len(clients) == 0: // Open
					full := tb.Len() >= maxSessions
					want := scanChoice(tb, tb.nanos())
					before := tb.Stats()
					err := tb.open(ClientID{Lo: next})
					if !full {
						if err != nil {
							t.Fatalf("step %d: open on a table that is not full: %v", step, err)
						}
					} else {
						checkChoice(t, step, tb, want, err, before)
					}
					if err == nil {
						clients = append(clients, &client{id: next, ack: 1, running: map[uint64]*Ticket{}})
					}
					next++
				case op <= 4: // a new call, left running or finished
					c := clients[rng.IntN(len(clients))]
					c.seq++
					tk, err := tb.Begin(ctx, hdr(c.id, c.seq, c.ack))
					if err == nil && tk.Run() {
						if rng.IntN(3) == 0 {
							c.running[c.seq] = tk
						} else {
							tb.Finish(tk, Outcome{Reply: intReply(c.seq), Size: rng.IntN(100)})
						}
					}
				case op == 5: // finish or abort a running call
					c := clients[rng.IntN(len(clients))]
					for seq, tk := range c.running {
						if rng.IntN(4) == 0 {
							tb.Abort(tk, nil)
						} else {
							tb.Finish(tk, Outcome{Reply: intReply(seq), Size: rng.IntN(100)})
						}
						delete(c.running, seq)
						break
					}
				case op == 6: // a duplicate, acknowledging more
					c := clients[rng.IntN(len(clients))]
					if c.seq > 0 {
						c.ack = min(c.seq, c.ack+uint64(rng.IntN(3)))
						tb.Begin(done, hdr(c.id, c.seq, c.ack)) // a duplicate of a running call does not wait
					}
				case op == 7: // close
					c := clients[rng.IntN(len(clients))]
					tb.Close(ClientID{Lo: c.id})
				case op == 8: // restore a record
					c := clients[rng.IntN(len(clients))]
					tb.Restore(hdr(c.id, c.seq+1, c.ack), Outcome{Reply: &StoredReply{Method: "M", Data: make([]byte, rng.IntN(50))}})
					c.seq++
				default: // a long pause
					clk.Advance(time.Duration(rng.IntN(int(testLease / 2))))
				}
				checkTable(t, tb)
			}
			st := tb.Stats()
			t.Logf("opened %d, evicted %d, expired %d, refused %d, closed %d, restored %d", st.Opened, st.Evicted, st.Expired, st.TooMany, st.Closed, st.Restored)
			for _, c := range clients {
				for _, tk := range c.running {
					tb.Finish(tk, Outcome{})
				}
			}
			checkTable(t, tb)
		})
	}
}

// choice is what a scan of every session says Open on a full table must
// do: drop the expired sessions, or evict one, or refuse.
type choice struct {
	expired  []ClientID
	victim   ClientID
	lastSeen int64 // the victim's last activity
	refuse   bool
}

// scanChoice decides as the table did before it kept lists: one pass over
// every session.
func scanChoice(tb *Table, now int64) choice {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var (
		c           choice
		found       bool
		victimEmpty bool
	)
	for id, s := range tb.sessions {
		if s.running > 0 {
			continue
		}
		if now-s.last >= tb.lease {
			c.expired = append(c.expired, id)
			continue
		}
		empty := s.held == 0
		if !found || (empty && !victimEmpty) || (empty == victimEmpty && s.last < c.lastSeen) {
			c.victim, victimEmpty, c.lastSeen, found = id, empty, s.last, true
		}
	}
	c.refuse = !found && len(c.expired) == 0
	return c
}

func checkChoice(t *testing.T, step int, tb *Table, want choice, err error, before TableStats) {
	t.Helper()
	after := tb.Stats()
	evicted, expired := after.Evicted-before.Evicted, after.Expired-before.Expired
	live := func(id ClientID) bool {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		_, ok := tb.sessions[id]
		return ok
	}
	switch {
	case want.refuse:
		if err == nil {
			t.Fatalf("step %d: Open on a table of busy sessions succeeded", step)
		}
	case err != nil:
		t.Fatalf("step %d: Open refused (%v), want %+v", step, err, want)
	case len(want.expired) > 0:
		for _, id := range want.expired {
			if live(id) {
				t.Fatalf("step %d: expired session %v still there", step, id)
			}
		}
		if evicted != 0 || expired != uint64(len(want.expired)) {
			t.Fatalf("step %d: %d evicted, %d expired; want none evicted and %d expired", step, evicted, expired, len(want.expired))
		}
	case live(want.victim):
		t.Fatalf("step %d: session %v (last %d) should have been evicted", step, want.victim, want.lastSeen)
	case evicted != 1 || expired != 0:
		t.Fatalf("step %d: %d evicted, %d expired; want one evicted", step, evicted, expired)
	}
}
