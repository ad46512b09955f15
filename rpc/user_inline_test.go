package rpc

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A caller reading its own reply arms an interrupt on its ctx
// (context.AfterFunc setting a past read deadline). When ctx ends just as
// the reply is read, the interrupt can run after the caller left reading,
// leaving a past read deadline on a connection nobody reads. The next
// call's peek must not take that deadline for a closed connection: doing
// so drops a healthy connection into draining with a reader goroutine
// blocked on it forever, and dials a new one.
func TestUserCallsWithRacingDeadlinesDoNotLeakConnections(t *testing.T) {
	s, _, addr, _ := startServer(t)
	c := dial(t, addr)
	big := strings.Repeat("x", 1<<20) // a reply that takes a while to read
	var r string
	if err := c.Call(ctxT(t), "Arith.Echo", big, &r); err != nil {
		t.Fatal(err)
	}
	// Find a timeout close to a call's round trip, so that many contexts
	// end while their replies are read.
	t0 := time.Now()
	for i := 0; i < 20; i++ {
		c.Call(ctxT(t), "Arith.Echo", big, &r)
	}
	rtt := time.Since(t0) / 20
	for i := 0; i < 300; i++ {
		d := rtt/2 + time.Duration(i%20)*rtt/20
		ctx, cancel := context.WithTimeout(context.Background(), d)
		c.Call(ctx, "Arith.Echo", big, &r)
		cancel()
	}
	time.Sleep(100 * time.Millisecond)
	if n := s.Stats().Connections; n > 1 {
		t.Errorf("after sequential calls on one client the server has %d connections open, want 1 (rtt %v)", n, rtt)
	}
}

// The interrupt of a caller whose ctx ended as its reply came in runs late,
// after the connection went idle: the next call must still use the
// connection, and no connection may be left open beside it.
func TestUserLateInterruptOnIdleConnection(t *testing.T) {
	s, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r); err != nil {
		t.Fatal(err)
	}
	tr := c.t.(*tcpTransport)
	first := tr.current()
	first.interruptCaller(1, context.Background()) // the first call's, as context.AfterFunc would run it, late
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r); err != nil {
		t.Fatal(err)
	}
	if cur := tr.current(); cur != first {
		t.Errorf("a stale read deadline on an idle connection made the client redial")
	}
	time.Sleep(100 * time.Millisecond)
	if n := s.Stats().Connections; n != 1 {
		t.Errorf("server has %d connections open, want 1", n)
	}
}
