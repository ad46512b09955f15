package rpc

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/coalesce"
	"github.com/semrpc/semrpc/internal/testwait"
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

// gatedListener wraps the connections it accepts in gatedConns.
type gatedListener struct {
	net.Listener
	conns chan *gatedConn
}

func (l *gatedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := newGatedConn(nc)
	l.conns <- g
	return g, nil
}

func (s *Server) onlyConn(t *testing.T) *serverConn {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	for c := range s.conns {
		return c
	}
	t.Fatal("no server connection")
	return nil
}

func TestRepliesQueuedBehindABlockedWriteLeaveInOneWrite(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	if err := s.Register(&Arith{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := &gatedListener{Listener: l, conns: make(chan *gatedConn, 1)}
	done := make(chan error, 1)
	go func() { done <- s.Serve(gl) }()
	defer func() {
		s.Close()
		<-done
	}()
	c := dial(t, l.Addr().String())
	ctx := ctxT(t)
	var got int
	if err := c.Call(ctx, "Arith.Add", Args{1, 2}, &got); err != nil {
		t.Fatal(err)
	}
	g := <-gl.conns
	g.armed.Store(true)
	const n = 6
	results := make(chan addResult, n)
	goAdd(ctx, c, 0, results)
	<-g.entered
	before := g.writes.Load()
	for i := 1; i < n; i++ {
		goAdd(ctx, c, i, results)
	}
	sc := s.onlyConn(t)
	testwait.For(t, "replies queued behind the blocked write", func() bool { return queued(sc.out) == n-1 })
	close(g.release)
	for range n {
		r := <-results
		if r.err != nil || r.got != r.i+1000 {
			t.Errorf("call %d: got %d, %v; want %d", r.i, r.got, r.err, r.i+1000)
		}
	}
	if w := g.writes.Load() - before; w != 1 {
		t.Errorf("%d replies queued behind a write left in %d writes, want 1", n-1, w)
	}
}

func TestRepliesQueuedForAPeerThatDoesNotReadAreBounded(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	if err := s.Register(&Arith{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := &gatedListener{Listener: l, conns: make(chan *gatedConn, 1)}
	done := make(chan error, 1)
	go func() { done <- s.Serve(gl) }()
	defer func() {
		s.Close()
		<-done
	}()
	c := dial(t, l.Addr().String())
	ctx := ctxT(t)
	var warm string
	if err := c.Call(ctx, "Arith.Echo", "hi", &warm); err != nil {
		t.Fatal(err)
	}
	g := <-gl.conns
	g.armed.Store(true)
	big := strings.Repeat("x", 64<<10)
	const n = 40 // 2.5 MiB of replies, over coalesce.MaxQueuedBytes
	errs := make(chan error, n)
	for range n {
		go func() {
			var got string
			err := c.Call(ctx, "Arith.Echo", big, &got)
			if err == nil && got != big {
				err = errors.New("wrong echo")
			}
			errs <- err
		}()
	}
	<-g.entered
	sc := s.onlyConn(t)
	testwait.For(t, "a responder waiting for the blocked write", func() bool {
		return sc.out.Waiting() > 0
	})
	held := sc.out.Buffered()
	if held > coalesce.MaxQueuedBytes+len(big)+1024 {
		t.Errorf("server buffered %d bytes of replies behind a blocked write, want at most %d", held, coalesce.MaxQueuedBytes+len(big)+1024)
	}
	close(g.release)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
