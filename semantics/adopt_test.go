package semantics

import (
	"context"
	"errors"
	"testing"
	"time"
)

// finderStore is a Store shared with other servers, reduced to its
// sessions: FindSession answers from sessions, or fails with err.
type finderStore struct {
	table    *Table
	sessions map[ClientID]uint64 // live sessions and their acks
	err      error
	asked    int
}

func (f *finderStore) Table() *Table { return f.table }
func (f *finderStore) Execute(ctx context.Context, h Header, method string, fn func(ctx context.Context) (any, error)) (Outcome, error) {
	reply, err := fn(ctx)
	return Outcome{Reply: reply, Err: err}, nil
}
func (f *finderStore) OpenSession(ClientID) error { return nil }
func (f *finderStore) Transact(ctx context.Context, fn func(ctx context.Context) (any, error)) (Outcome, error) {
	reply, err := fn(ctx)
	return Outcome{Reply: reply, Err: err}, nil
}
func (f *finderStore) FindSession(_ context.Context, id ClientID) (uint64, bool, error) {
	f.asked++
	if f.err != nil {
		return 0, false, f.err
	}
	ack, ok := f.sessions[id]
	return ack, ok, nil
}

func newFinderTable(maxSessions int) (*Table, *finderStore) {
	f := &finderStore{sessions: make(map[ClientID]uint64)}
	f.table = NewTable(&TableConfig{Epoch: testEpoch, Store: f, MaxSessions: maxSessions})
	return f.table, f
}

func TestTableTakesOverALiveSessionOfASharedStore(t *testing.T) {
	tbl, f := newFinderTable(0)
	other := NewClientID() // opened on another server of the domain
	f.sessions[other] = 5
	ctx := context.Background()

	tk, err := tbl.Begin(ctx, Header{Client: other, Seq: 7, Ack: 6, Epoch: testEpoch})
	if err != nil || !tk.Run() {
		t.Fatalf("first request of a session opened elsewhere: %v, want NEW", err)
	}
	tbl.Finish(tk, Outcome{Reply: "r7"})
	if st := tbl.Stats(); st.Adopted != 1 || st.Sessions != 1 {
		t.Fatalf("stats %+v, want 1 adopted session", st)
	}
	tk, err = tbl.Begin(ctx, Header{Client: other, Seq: 7, Ack: 6, Epoch: testEpoch})
	if err != nil || tk.Run() || tk.Cached().Reply != "r7" {
		t.Fatalf("duplicate after the take-over: %v, want the record r7", err)
	}
	if f.asked != 1 {
		t.Fatalf("store asked %d times, want once (the session is held now)", f.asked)
	}
	// The store's ack holds: a seq below it is stale, not run.
	if _, err := tbl.Begin(ctx, Header{Client: other, Seq: 4, Ack: 4, Epoch: testEpoch}); !errors.Is(err, ErrStale) {
		t.Fatalf("seq below the store's ack: %v, want ErrStale", err)
	}
}

func TestTableRefusesASessionTheSharedStoreDoesNotHold(t *testing.T) {
	tbl, f := newFinderTable(0)
	_, err := tbl.Begin(context.Background(), Header{Client: NewClientID(), Seq: 1, Ack: 1, Epoch: testEpoch})
	if !errors.Is(err, ErrSessionExpired) || ClassOf(err) != ClassOf(ErrSessionExpired) {
		t.Fatalf("unknown session: %v (class %v), want ErrSessionExpired", err, ClassOf(err))
	}
	if f.asked != 1 || tbl.Stats().Adopted != 0 {
		t.Fatalf("asked %d, adopted %d; want 1, 0", f.asked, tbl.Stats().Adopted)
	}
}

func TestTableRefusesWhenTheSharedStoreCannotTell(t *testing.T) {
	tbl, f := newFinderTable(0)
	f.err = errors.New("connection refused")
	_, err := tbl.Begin(context.Background(), Header{Client: NewClientID(), Seq: 1, Ack: 1, Epoch: testEpoch})
	if !errors.Is(err, ErrRejected) || errors.Is(err, ErrSessionExpired) {
		t.Fatalf("store unreachable: %v, want rejected (not executed), not expired", err)
	}
}

func TestTableWithoutASharedStoreDoesNotLookSessionsUp(t *testing.T) {
	tbl := NewTable(&TableConfig{Epoch: testEpoch, Lease: time.Minute})
	_, err := tbl.Begin(context.Background(), Header{Client: NewClientID(), Seq: 1, Ack: 1, Epoch: testEpoch})
	if !errors.Is(err, ErrSessionExpired) || tbl.Stats().Adopted != 0 {
		t.Fatalf("unknown session on an in-memory table: %v, want ErrSessionExpired", err)
	}
}

func TestTableTakeOverRespectsMaxSessions(t *testing.T) {
	tbl, f := newFinderTable(1)
	ctx := context.Background()
	id, err := tbl.Open()
	if err != nil {
		t.Fatal(err)
	}
	tk, err := tbl.Begin(ctx, Header{Client: id, Seq: 1, Ack: 1, Epoch: testEpoch}) // running: not evictable
	if err != nil || !tk.Run() {
		t.Fatal(err)
	}
	other := NewClientID()
	f.sessions[other] = 1
	if _, err := tbl.Begin(ctx, Header{Client: other, Seq: 1, Ack: 1, Epoch: testEpoch}); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("take-over into a full table: %v, want ErrTooManySessions", err)
	}
	tbl.Finish(tk, Outcome{})
	if tk, err := tbl.Begin(ctx, Header{Client: other, Seq: 1, Ack: 1, Epoch: testEpoch}); err != nil || !tk.Run() {
		t.Fatalf("take-over once a session is idle: %v, want NEW (the idle one evicted)", err)
	}
}
