package rpc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// Calls whose callers gave up while their methods still run do not count
// against the server's per-session cap: the client freed their window
// slots, and so does the server (they are below the session's ack), so a
// later call on the same client is admitted, not refused as a malformed
// header. No call runs twice.
func TestGivenUpCallsDoNotCountAgainstTheSessionCap(t *testing.T) {
	const window = 8
	table := semantics.NewTable(&semantics.TableConfig{MaxCalls: window})
	_, e, addr := serveEdge(t, WithTable(table))
	c := dial(t, addr, WithSemantics(semantics.AtMostOnce(semantics.Window(window))))
	for i := range window {
		ctx, cancel := context.WithCancel(context.Background())
		called := make(chan error, 1)
		go func() {
			var r int
			called <- c.Call(ctx, "Edge.Hold", i, &r)
		}()
		<-e.started // running at the server
		cancel()
		if err := <-called; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrMaybeExecuted) {
			t.Fatalf("given-up call %d: %v, want may have executed, canceled", i, err)
		}
	}
	for i := range 2 * window {
		var r int
		if err := c.Call(ctxT(t), "Edge.Inc", i, &r); err != nil {
			t.Fatalf("call %d after %d calls given up while running: %v", i, window, err)
		}
	}
	close(e.release)
	if st := table.Stats(); st.WindowExceeded != 0 || st.New != 3*window {
		t.Fatalf("table %+v: want %d calls run, none refused", st, 3*window)
	}
	if n := c.Stats().SessionsOpened; n != 1 {
		t.Fatalf("%d sessions opened, want the calls in one", n)
	}
}

// A client that does exceed the cap (it never acknowledges) is refused,
// not run, with a text that says what the session holds.
func TestSessionCapRefusalSaysWhatTheSessionHolds(t *testing.T) {
	const cap = 8
	table := semantics.NewTable(&semantics.TableConfig{MaxCalls: cap})
	_, e, addr := serveEdge(t, WithTable(table))
	c := dial(t, addr)
	ctx := ctxT(t)
	var open OpenReply
	if err := c.t.RoundTrip(ctx, &Request{ServiceMethod: openMethod, Args: &OpenArgs{Version: 2}}, &open); err != nil {
		t.Fatal(err)
	}
	send := func(method string, seq uint64) error {
		var r int
		h := semantics.Header{Client: open.Client, Seq: seq, Ack: 1, Epoch: open.Epoch}
		return c.t.RoundTrip(ctx, &Request{ServiceMethod: method, Args: int(seq), Header: &h}, &r)
	}
	for seq := uint64(1); seq <= cap/2; seq++ { // completed, never acknowledged
		if err := send("Edge.Inc", seq); err != nil {
			t.Fatal(err)
		}
	}
	held := make(chan error, cap/2)
	for seq := uint64(cap/2 + 1); seq <= cap; seq++ { // running
		go func() { held <- send("Edge.Hold", seq) }()
		<-e.started
	}
	runs := e.runs.Load()
	err := send("Edge.Inc", cap+1)
	var re *RejectedError
	if !errors.As(err, &re) || !errors.Is(err, semantics.ErrBadHeader) || semantics.ClassOf(err) != semantics.ClassRejected {
		t.Fatalf("call beyond the cap: %v, want a refusal, not executed, ErrBadHeader (the code ErrWindowExceeded travels as)", err)
	}
	want := "too many unacknowledged calls in one session (8 held: 4 running, 4 completed awaiting acknowledgement; MaxCalls 8)"
	if msg := err.Error(); !strings.Contains(msg, want) || strings.Contains(msg, "malformed") {
		t.Fatalf("refusal %q, want it to say %q and not call the header malformed", msg, want)
	}
	if e.runs.Load() != runs {
		t.Fatal("the refused call ran")
	}
	close(e.release)
	for range cap / 2 {
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	}
}
