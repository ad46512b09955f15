package rpc

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/semantics"
)

// openGate is a server interceptor that holds each session handshake until
// the test releases it: it sends the handshake's release channel on
// arrived.
type openGate struct{ arrived chan chan struct{} }

func (g *openGate) intercept(ctx context.Context, ci *CallInfo, next Handler) error {
	if ci.ServiceMethod == openMethod {
		release := make(chan struct{})
		g.arrived <- release
		<-release
	}
	return next(ctx, ci)
}

// waitForNoSessions waits for tb to hold no session, and fails the test if
// it still holds some.
func waitForNoSessions(t *testing.T, tb *semantics.Table) {
	t.Helper()
	if !testwait.Until(testwait.Deadline, func() bool { return tb.Len() == 0 }) {
		t.Fatalf("%d sessions left on the server (%+v)", tb.Len(), tb.Stats())
	}
}

// A client closed while its first at-most-once call's handshake is on its
// way leaves no session on the server: Close waits for the handshake and
// ends the session it opened, with the others, before the transport
// closes. The call is told it did not run.
func TestClientClosedDuringHandshakeLeavesNoSession(t *testing.T) {
	g := &openGate{arrived: make(chan chan struct{})}
	srv, a, addr, _ := startServer(t, WithServerInterceptor(g.intercept))
	const clients = 50
	for i := range clients {
		c, err := Dial(ctxT(t), "tcp", addr, WithSemantics(atMostOnce()))
		if err != nil {
			t.Fatal(err)
		}
		called := make(chan error, 1)
		go func() {
			var r int
			called <- c.Call(ctxT(t), "Arith.Add", Args{A: 1, B: 2}, &r)
		}()
		release := <-g.arrived // the handshake is held at the server
		closed := make(chan struct{})
		go func() {
			c.Close()
			close(closed)
		}()
		for !c.closed.Load() {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(5 * time.Millisecond) // Close is under way
		close(release)
		<-closed
		if err := <-called; !errors.Is(err, ErrNotExecuted) || !errors.Is(err, ErrClientClosed) {
			t.Fatalf("client %d: call: %v, want not executed, client closed", i, err)
		}
	}
	waitForNoSessions(t, srv.Table())
	if st := srv.Table().Stats(); st.Opened != clients || st.Closed != clients || st.Expired != 0 {
		t.Fatalf("table %+v: want %d sessions opened and as many closed", st, clients)
	}
	if n := a.calls.Load(); n != 0 {
		t.Fatalf("the method ran %d times", n)
	}
}

// Whatever the moment of its first at-most-once call a client is closed
// at, it leaves no session on the server.
func TestClientsClosedAtAnyMomentOfTheirFirstCallLeaveNoSessions(t *testing.T) {
	srv, _, addr, _ := startServer(t)
	const clients = 200
	rng := rand.New(rand.NewPCG(1, 2))
	delays := make([]time.Duration, clients)
	for i := range delays {
		delays[i] = time.Duration(rng.IntN(1500)) * time.Microsecond
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := Dial(ctxT(t), "tcp", addr, WithSemantics(atMostOnce()))
			if err != nil {
				t.Error(err)
				return
			}
			called := make(chan struct{})
			go func() {
				var r int
				c.Call(ctxT(t), "Arith.Add", Args{A: 1, B: 2}, &r)
				close(called)
			}()
			time.Sleep(delays[i])
			c.Close()
			<-called
		}()
	}
	wg.Wait()
	waitForNoSessions(t, srv.Table())
	if st := srv.Table().Stats(); st.Closed != st.Opened || st.Expired != 0 {
		t.Fatalf("table %+v: want every session opened closed", st)
	}
}
