package rpc

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// Rendezvous blocks Wait until Signal is called.
type Rendezvous struct {
	started chan struct{}
	signal  chan struct{}
}

func (r *Rendezvous) Wait(_ int, reply *int) error {
	close(r.started)
	<-r.signal
	*reply = 1
	return nil
}

func (r *Rendezvous) Signal(_ int, reply *int) error {
	close(r.signal)
	*reply = 2
	return nil
}

// startServerWith serves rcvr on loopback and returns the server and the
// address; cleanup closes it.
func startServerWith(t *testing.T, rcvr any) (*Server, string) {
	t.Helper()
	s := NewServer(WithLogger(discardLogger()))
	if err := s.Register(rcvr); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, l.Addr().String()
}

// A lone request runs on the goroutine that read it; if its method blocks
// until a later request on the same connection arrives, another goroutine
// takes over reading, so the later request is read and runs.
func TestMethodBlockedOnALaterRequestOfItsConnectionGetsIt(t *testing.T) {
	r := &Rendezvous{started: make(chan struct{}), signal: make(chan struct{})}
	_, addr := startServerWith(t, r)
	c := dial(t, addr)
	ctx := ctxT(t)
	waited := make(chan error, 1)
	go func() {
		var got int
		waited <- c.Call(ctx, "Rendezvous.Wait", 0, &got)
	}()
	<-r.started
	var got int
	if err := c.Call(ctx, "Rendezvous.Signal", 0, &got); err != nil || got != 2 {
		t.Fatalf("Signal on the connection of the blocked Wait: %d, %v", got, err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestLoneRequestsRunOnTheReadingGoroutine(t *testing.T) {
	// A grace no call reaches here, even under the race detector: no
	// goroutine takes over reading, so none starts a worker either.
	setInlineGrace(t, time.Minute)
	s, _, addr, _ := startServer(t)
	c := dial(t, addr)
	ctx := ctxT(t)
	for i := range 20 {
		var got int
		if err := c.Call(ctx, "Arith.Add", Args{i, 1}, &got); err != nil || got != i+1 {
			t.Fatalf("call %d: %d, %v", i, got, err)
		}
	}
	if n := s.onlyConn(t).nwork.Load(); n != 0 {
		t.Errorf("20 sequential calls started %d workers, want none (each runs where it was read)", n)
	}
}

// With a grace every request outlives, reading changes goroutine on nearly
// every lone request; every call still gets its own answer, once.
func TestReadingHandedOffOnEveryRequestKeepsAnswersInStep(t *testing.T) {
	setInlineGrace(t, time.Nanosecond)
	_, arith, addr, _ := startServer(t)
	c := dial(t, addr)
	ctx := ctxT(t)
	const callers, calls = 4, 50
	errs := make(chan error, callers)
	for g := range callers {
		go func() {
			for i := range calls {
				var got int
				err := c.Call(ctx, "Arith.Add", Args{g * 1000, i}, &got)
				if err == nil && got != g*1000+i {
					err = fmt.Errorf("caller %d call %d: got %d", g, i, got)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := arith.calls.Load(); n != callers*calls {
		t.Errorf("server ran %d calls, want %d", n, callers*calls)
	}
}
