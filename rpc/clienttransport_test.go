package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/semantics"
)

// A server that accepts connections and closes (or resets) them at once is
// dialled with backoff whatever the calls do: a connection that ends before
// the server said anything counts as a failed dial. (Paced by the calls
// alone, each at-least-once call made about eight connections: its
// not-sent attempts are free.)
func TestRedialsArePacedAgainstAServerThatClosesAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy semantics.Policy
		reset  bool
	}{
		{"close/no-retry", semantics.NoRetry(), false},
		{"close/at-least-once", semantics.AtLeastOnce(), false},
		{"close/at-most-once", atMostOnce(), false},
		{"reset/at-least-once", semantics.AtLeastOnce(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var accepted atomic.Int64
			a := serveEach(t, func(rwc io.ReadWriteCloser) {
				accepted.Add(1)
				if tc.reset {
					rwc.(*net.TCPConn).SetLinger(0)
				}
				rwc.Close()
			})
			c := dial(t, a.addr, WithSemantics(tc.policy))
			const calls = 32
			for range calls {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				var r int
				if err := c.Call(ctx, "Arith.Add", Args{1, 1}, &r); err == nil {
					t.Fatal("a call succeeded against a server that closes every connection")
				}
				cancel()
			}
			if n := accepted.Load(); n > calls*3/2+4 {
				t.Fatalf("%d connections for %d calls, want at most %d", n, calls, calls*3/2+4)
			}
		})
	}
}

// A server that writes on every connection before it is asked (junk here)
// is not dialled without end, and its connections are closed, not left
// with a reader waiting for the rest of a message that never comes: the
// call gives up after a few connections, not sent.
func TestServerSendingUnaskedIsNotDialledForever(t *testing.T) {
	var dials, ended atomic.Int64
	a := serveEach(t, func(rwc io.ReadWriteCloser) {
		dials.Add(1)
		rwc.Write([]byte("unasked"))
		io.Copy(io.Discard, rwc) // until the client hangs up
		ended.Add(1)
	})
	// Each connection is handed over once the junk is in its socket, so
	// that the look before the first call finds it.
	c := NewClient(NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", a.addr)
		if err != nil {
			return nil, err
		}
		for probe := newProbe(nc); probe() == probeEmpty; {
			if ctx.Err() != nil {
				nc.Close()
				return nil, ctx.Err()
			}
			time.Sleep(time.Millisecond)
		}
		return nc, nil
	}))
	t.Cleanup(func() { c.Close() })
	var got int
	err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &got)
	if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, errUnasked) {
		t.Fatalf("call on a server that sends unasked: %v, want not executed, saying why", err)
	}
	if n := dials.Load(); n < 1 || n > 4 {
		t.Errorf("%d connections for one call, want 1 to 4 (the redial is paced after the first)", n)
	}
	if !testwait.Until(testwait.Deadline, func() bool { return ended.Load() == dials.Load() }) {
		t.Fatalf("%d of %d connections closed by the client", ended.Load(), dials.Load())
	}
}

// A connection the server closed (or reset) while nobody read it is not
// sent on: the caller's look before sending finds the close, and the call
// goes out on a fresh connection. Without the look, the request would be
// written into the dead connection and the call would end "may have
// executed".
func TestIdleConnectionClosedByTheServerIsNotSentOn(t *testing.T) {
	for _, reset := range []bool{false, true} {
		name := "FIN"
		if reset {
			name = "RST"
		}
		t.Run(name, func(t *testing.T) {
			setIdleLook(t, time.Hour)
			s := NewServer(WithLogger(discardLogger()))
			a := &Arith{}
			if err := s.Register(a); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			ts := serveEach(t, s.ServeConn)
			c := dial(t, ts.addr, WithSemantics(semantics.NoRetry()))
			var got int
			if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &got); err != nil {
				t.Fatal(err)
			}
			conn := tcpConnOf(t, c)
			if r := readerOf(conn); r != readNone {
				t.Fatalf("reader %d after the call, want nobody", r)
			}
			sc := ts.accepted()[0]
			if reset {
				sc.(*net.TCPConn).SetLinger(0)
			}
			sc.Close()
			testwait.For(t, "the close to reach the client's socket", func() bool { return conn.probe() != probeEmpty })
			time.Sleep(2 * lookAfter) // idle long enough to be looked at
			before := a.calls.Load()
			if err := c.Call(ctxT(t), "Arith.Add", Args{3, 4}, &got); err != nil || got != 7 {
				t.Fatalf("a NoRetry call after the server closed the idle connection: %d, %v; want it sent on a fresh connection", got, err)
			}
			if n := a.calls.Load() - before; n != 1 {
				t.Errorf("the call ran %d times, want 1", n)
			}
			if n := len(ts.accepted()); n != 2 {
				t.Errorf("%d connections accepted, want 2", n)
			}
		})
	}
}

// R24 holds in a testing/synctest bubble too: a call on a connection the
// server closed while nobody read it goes out on a fresh connection. The
// bubble's clock is fake: it stands still while goroutines run or wait on
// the network, however long that takes for real, so how long a connection
// has been idle cannot be measured on it (measured there, a connection
// closed long since looked just used, was not looked at, and the call sent
// on it failed may-have-executed).
func TestIdleConnectionClosedByTheServerIsNotSentOnInABubble(t *testing.T) {
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

// R24 holds whoever reads: a connection the idle watcher gave a reader
// goroutine, closed by the server just before a call, is not sent on; the
// call goes out on a fresh connection.
func TestConnectionClosedUnderTheWatchersReaderIsNotSentOn(t *testing.T) {
	setIdleLook(t, time.Millisecond)
	s := NewServer(WithLogger(discardLogger()))
	s.Register(new(Arith))
	a := serveEach(t, func(rwc io.ReadWriteCloser) { s.ServeConn(rwc) })
	t.Cleanup(func() { s.Close() })
	c := dial(t, a.addr)
	var r int
	for i := range 50 {
		if err := c.Call(ctxT(t), "Arith.Add", Args{i, 1}, &r); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		conn := tcpConnOf(t, c)
		testwait.For(t, "the watcher's reader", func() bool {
			conn.mu.Lock()
			defer conn.mu.Unlock()
			return conn.read == readGoroutine && len(conn.pending) == 0
		})
		accepted := a.accepted()
		accepted[len(accepted)-1].Close()
		// At once: the reader goroutine has not woken to the close yet.
		if err := c.Call(ctxT(t), "Arith.Add", Args{i, 2}, &r); err != nil {
			t.Fatalf("call %d right after the server closed the idle connection: %v", i, err)
		}
	}
}
