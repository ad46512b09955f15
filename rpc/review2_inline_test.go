package rpc

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// In a testing/synctest bubble the clock is the bubble's fake one: it
// stands still while goroutines run or wait on the network, however long
// that takes for real. The 50 µs skip of the idle look measured that clock,
// so in a bubble a connection never looked idle for long enough: a call
// sent on a connection the server had closed long since (for real) failed
// may-have-executed, where R24 says it goes out on a fresh connection.
func TestReview2IdleLookInABubble(t *testing.T) {
	setIdleLook(t, time.Hour)
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts := serveEach(t, s.ServeConn) // outside the bubble: it outlives it
	synctest.Test(t, func(t *testing.T) {
		c, err := Dial(context.Background(), "tcp", ts.addr, WithSemantics(semantics.NoRetry()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var got int
		if err := c.Call(context.Background(), "Arith.Add", Args{1, 2}, &got); err != nil {
			t.Fatal(err)
		}
		conn := tcpConnOf(t, c)
		if r := readerOf(conn); r != readNone {
			t.Fatalf("reader %d after the call, want nobody", r)
		}
		ts.accepted()[0].Close()
		// Wait (for real: the fake clock does not move while this
		// goroutine runs) until the close has reached the client's socket.
		deadline := time.Now().Add(time.Hour) // fake: the loop below bounds the wait
		for i := 0; conn.probe() == probeEmpty; i++ {
			if i > 5_000_000 || time.Now().After(deadline) {
				t.Fatal("the close never reached the client")
			}
			runtime.Gosched()
		}
		before := a.calls.Load()
		if err := c.Call(context.Background(), "Arith.Add", Args{3, 4}, &got); err != nil || got != 7 {
			t.Fatalf("a NoRetry call in a bubble after the server closed the idle connection: %d, %v; want it sent on a fresh connection", got, err)
		}
		if n := a.calls.Load() - before; n != 1 {
			t.Errorf("the call ran %d times, want 1", n)
		}
	})
}

// A connection dialled before any call (WithEagerDial) is idle from the
// start: it too gets a reader from the idle watcher, so that a server's
// shutdown notice is read and the connection closed without waiting for a
// call. It went idle without passing through idle(), which is what starts
// the watcher, so none came: Shutdown waited out its grace for this client,
// and the connection stayed open, unread, until the client's Close.
func TestReview2EagerConnectionGetsTheIdleWatcher(t *testing.T) {
	setIdleLook(t, time.Millisecond)
	s, _, addr, _ := startServer(t)
	c := dial(t, addr, WithEagerDial())
	conn := tcpConnOf(t, c)
	// The dial is over once the kernel has the connection: wait until the
	// server serves it, or Shutdown just drops it (a reset, no notice).
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Connections != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the server never took the connection")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitNoticeRead(t, conn, "eagerly dialled")
}
