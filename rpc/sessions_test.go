package rpc

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// blackHole accepts connections and reads them without ever answering. got
// is closed when the first bytes arrive.
func blackHole(t *testing.T) (addr string, got <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					if _, err := nc.Read(buf); err != nil {
						return
					}
					once.Do(func() { close(ch) })
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), ch
}

// A call waiting for another call's handshake returns, not executed, when
// its own context ends, as Call promises, however long that handshake
// takes (a plain mutex around the handshake kept it waiting until the
// other call's context ended).
func TestWaitForAnotherCallsHandshakeEndsWithTheContext(t *testing.T) {
	addr, got := blackHole(t)
	c := dial(t, addr, WithSemantics(semantics.AtMostOnce()))

	long, cancelLong := context.WithCancel(context.Background())
	var r int
	first := c.Go(long, "Arith.Add", Args{1, 2}, &r)
	defer func() {
		cancelLong()
		<-first.Done
	}()
	select {
	case <-got: // the first call's handshake is on the wire and holds the lock
	case <-time.After(5 * time.Second):
		t.Fatal("handshake never sent")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Call(ctx, "Arith.Add", Args{1, 2}, new(int)) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNotExecuted) {
			t.Errorf("err = %v, want deadline exceeded, not executed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("call did not return after its deadline while another handshake was pending")
	}
}

// An exactly-once call is refused, not executed, by a server without
// durable records, also on a session an at-most-once call opened before:
// the durability check is made for each call, not only when the session is
// opened (exactly-once calls reusing such a session ran, silently degraded
// to at-most-once).
func TestExactlyOnceIsRefusedByANonDurableServerAfterAnAtMostOnceSession(t *testing.T) {
	_, a, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r, WithSemantics(semantics.AtMostOnce())); err != nil {
		t.Fatal(err)
	}
	before := a.calls.Load()
	err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r, WithSemantics(semantics.ExactlyOnce()))
	if !errors.Is(err, semantics.ErrNotDurable) || !errors.Is(err, ErrNotExecuted) {
		t.Errorf("exactly-once on a non-durable server: %v; want ErrNotDurable, not executed", err)
	}
	if n := a.calls.Load() - before; n != 0 {
		t.Errorf("exactly-once call ran %d times on a server without durable records", n)
	}
}
