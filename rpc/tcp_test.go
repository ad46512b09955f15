package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	stdrpc "net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/semrpc/semrpc/internal/coalesce"
	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/semantics"
)

// gatedConn counts its writes; once armed, the next write waits for
// release, and may then be cut short.
type gatedConn struct {
	net.Conn
	writes  atomic.Int64
	armed   atomic.Bool
	entered chan struct{} // closed when the armed write is waiting
	release chan struct{} // closed to let the armed write go on
	// cut, if set before release, is called with the write after the
	// armed one: it returns how many bytes to pass on before failing.
	cut    atomic.Pointer[func(p []byte) int]
	broken atomic.Bool
}

var errCut = errors.New("test: write cut short")

func newGatedConn(c net.Conn) *gatedConn {
	return &gatedConn{Conn: c, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.writes.Add(1)
	if g.broken.Load() {
		return 0, errCut
	}
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
		return g.Conn.Write(p)
	}
	if cut := g.cut.Swap(nil); cut != nil {
		n, _ := g.Conn.Write(p[:(*cut)(p)])
		g.broken.Store(true)
		g.Conn.Close()
		return n, errCut
	}
	return g.Conn.Write(p)
}

// queued returns how many messages wait in a coalescer's buffer.
func queued[T any](c *coalesce.Writer[T]) int { return c.Queued() }

// gatedClient dials addr through a gatedConn.
func gatedClient(t *testing.T, addr string) (*Client, *tcpTransport, func() *gatedConn) {
	t.Helper()
	var mu sync.Mutex
	var last *gatedConn
	tr := NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		g := newGatedConn(nc)
		mu.Lock()
		last = g
		mu.Unlock()
		return g, nil
	})
	c := NewClient(tr, WithSemantics(semantics.NoRetry()))
	t.Cleanup(func() { c.Close() })
	return c, tr.(*tcpTransport), func() *gatedConn { mu.Lock(); defer mu.Unlock(); return last }
}

func (t *tcpTransport) current() *tcpConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

type addResult struct {
	i   int
	got int
	err error
}

// goAdd calls Arith.Add(i, 1000) in a goroutine.
func goAdd(ctx context.Context, c *Client, i int, out chan<- addResult) {
	go func() {
		var got int
		err := c.Call(ctx, "Arith.Add", Args{i, 1000}, &got)
		out <- addResult{i, got, err}
	}()
}

func TestRequestsQueuedBehindABlockedWriteLeaveInOneWrite(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c, tr, conn := gatedClient(t, addr)
	ctx := ctxT(t)
	var got int
	if err := c.Call(ctx, "Arith.Add", Args{1, 2}, &got); err != nil || got != 3 {
		t.Fatalf("warm-up call: %d, %v", got, err)
	}
	g := conn()
	g.armed.Store(true)
	const n = 6
	results := make(chan addResult, n)
	goAdd(ctx, c, 0, results)
	<-g.entered
	before := g.writes.Load()
	for i := 1; i < n; i++ {
		goAdd(ctx, c, i, results)
	}
	testwait.For(t, "requests queued behind the blocked write", func() bool { return queued(tr.current().out) == n-1 })
	close(g.release)
	for range n {
		r := <-results
		if r.err != nil || r.got != r.i+1000 {
			t.Errorf("call %d: got %d, %v; want %d", r.i, r.got, r.err, r.i+1000)
		}
	}
	if w := g.writes.Load() - before; w != 1 {
		t.Errorf("%d requests queued behind a write left in %d writes, want 1", n-1, w)
	}
}

func TestLoneCallsWriteOneRequestEach(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c, _, conn := gatedClient(t, addr)
	ctx := ctxT(t)
	const n = 20
	for i := range n {
		var got int
		if err := c.Call(ctx, "Arith.Add", Args{i, 1}, &got); err != nil || got != i+1 {
			t.Fatalf("call %d: %d, %v", i, got, err)
		}
	}
	if w := conn().writes.Load(); w != n {
		t.Errorf("%d sequential calls made %d writes, want one each", n, w)
	}
}

func TestWriteCutShortFailsTheRequestsItDidNotSendAsNotSent(t *testing.T) {
	_, arith, addr, _ := startServer(t)
	c, tr, conn := gatedClient(t, addr)
	ctx := ctxT(t)
	var got int
	if err := c.Call(ctx, "Arith.Add", Args{1, 2}, &got); err != nil {
		t.Fatal(err)
	}
	g := conn()
	g.armed.Store(true)
	const n = 5
	results := make(chan addResult, n)
	goAdd(ctx, c, 0, results) // its write blocks, then goes through
	<-g.entered
	// Queue the others one at a time, so that the batch is in order 1..n-1.
	for i := 1; i < n; i++ {
		goAdd(ctx, c, i, results)
		testwait.For(t, "request queued", func() bool { return queued(tr.current().out) == i })
	}
	out := tr.current().out
	firstEnd := out.QueuedEnds()[0] // request 1 is written whole, and nothing after it
	cut := func(p []byte) int { return firstEnd }
	g.cut.Store(&cut)
	close(g.release)
	byCall := make(map[int]error)
	for range n {
		r := <-results
		byCall[r.i] = r.err
	}
	for i := 0; i < 2; i++ { // written whole: answered, or may have run
		if cl := semantics.ClassOf(byCall[i]); cl != semantics.ClassNone && cl != semantics.ClassMaybeExecuted {
			t.Errorf("call %d, written whole: %v (class %v), want an answer or may-have-executed", i, byCall[i], cl)
		}
	}
	for i := 2; i < n; i++ {
		if !errors.Is(byCall[i], ErrNotExecuted) || !strings.Contains(byCall[i].Error(), errCut.Error()) {
			t.Errorf("call %d, not written: %v, want not executed, with the write's error", i, byCall[i])
		}
	}
	// The server ran the warm-up call and at most the two requests written.
	if runs := arith.calls.Load(); runs > 3 {
		t.Errorf("server ran %d calls, want at most 3", runs)
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

// Coalesced requests and replies are plain net/rpc messages back to back:
// a stock net/rpc client with many concurrent calls reads our server's
// batched replies, and a stock net/rpc server reads our client's batched
// requests.
func TestCoalescedMessagesInteropWithStockNetRPC(t *testing.T) {
	const callers, calls = 32, 40
	run := func(t *testing.T, call func(i, j int) (int, error)) {
		errs := make(chan error, callers)
		for i := range callers {
			go func() {
				for j := range calls {
					got, err := call(i, j)
					if err == nil && got != i*1000+j {
						err = fmt.Errorf("caller %d call %d: got %d", i, j, got)
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
	}
	t.Run("stock client, our server", func(t *testing.T) {
		_, _, addr, _ := startServer(t)
		sc, err := stdrpc.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		run(t, func(i, j int) (int, error) {
			var got int
			err := sc.Call("Arith.Add", Args{i * 1000, j}, &got)
			return got, err
		})
	})
	t.Run("our client, stock server", func(t *testing.T) {
		srv := stdrpc.NewServer()
		if err := srv.RegisterName("Arith", new(StdArith)); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			conn, err := l.Accept()
			if err != nil {
				return
			}
			srv.ServeConn(conn)
		}()
		c := dial(t, l.Addr().String())
		ctx := ctxT(t)
		run(t, func(i, j int) (int, error) {
			var got int
			err := c.Call(ctx, "Arith.Add", Args{i * 1000, j}, &got)
			return got, err
		})
		c.Close()
		l.Close()
		<-done
	})
}
