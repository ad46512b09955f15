package tests

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex // protects now
	now time.Time
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

// An idle session expires on the server; the client's next call is told
// so (not executed), opens a new session, and runs once.
func TestExpiredSessionStartsANewOneForUnsentCalls(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	table := semantics.NewTable(&semantics.TableConfig{Lease: time.Hour, Now: clock.Now})
	srv := rpc.NewServer(rpc.WithLogger(quiet()), rpc.WithTable(table))
	counter := NewCounter()
	if err := srv.Register(counter); err != nil {
		t.Fatal(err)
	}
	client := rpc.NewClient(direct{srv}, rpc.WithSemantics(semantics.AtMostOnce()))
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var reply IncrReply
	if err := client.Call(ctx, "Counter.Incr", IncrArgs{ID: 1}, &reply); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour) // the session is idle past its lease
	if err := client.Call(ctx, "Counter.Incr", IncrArgs{ID: 2}, &reply); err != nil {
		t.Fatalf("call after expiry: %v", err)
	}
	if counter.Runs(1) != 1 || counter.Runs(2) != 1 {
		t.Fatalf("runs: %d and %d, want 1 and 1", counter.Runs(1), counter.Runs(2))
	}
	cs, ts := client.Stats(), table.Stats()
	if cs.SessionsOpened != 2 || cs.SessionResets != 1 {
		t.Errorf("client: %d sessions opened, %d reset; want 2 and 1", cs.SessionsOpened, cs.SessionResets)
	}
	if ts.Expired == 0 || ts.Unknown == 0 {
		t.Errorf("table: %d expired, %d unknown-session answers; want both > 0", ts.Expired, ts.Unknown)
	}
}
