package rpc

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	stdrpc "net/rpc"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/coalesce"
	"github.com/semrpc/semrpc/semantics"
)

// Arith is the test service, in both handler styles.
type Arith struct {
	calls atomic.Int64
	block chan struct{} // Slow waits on it
}

type Args struct{ A, B int }
type Quotient struct{ Quo, Rem int }

func (t *Arith) Add(args Args, reply *int) error {
	t.calls.Add(1)
	*reply = args.A + args.B
	return nil
}

func (t *Arith) Mul(args *Args, reply *int) error {
	t.calls.Add(1)
	*reply = args.A * args.B
	return nil
}

func (t *Arith) Divide(args Args, quo *Quotient) error {
	t.calls.Add(1)
	if args.B == 0 {
		return errors.New("divide by zero")
	}
	quo.Quo, quo.Rem = args.A/args.B, args.A%args.B
	return nil
}

// Sub is lab-style: no result.
func (t *Arith) Sub(args Args, reply *int) {
	t.calls.Add(1)
	*reply = args.A - args.B
}

func (t *Arith) Slow(args Args, reply *int) error {
	t.calls.Add(1)
	<-t.block
	*reply = args.A
	return nil
}

func (t *Arith) Panic(args Args, reply *int) error {
	panic("boom")
}

func (t *Arith) Echo(s string, reply *string) error {
	*reply = s
	return nil
}

// quietLogger keeps expected log lines out of test output but lets tests
// look at them.
type logSink struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// startServer serves a fresh Arith on a loopback listener; cleanup shuts
// the server down.
func startServer(t testing.TB, opts ...Option) (*Server, *Arith, string, *logSink) {
	t.Helper()
	sink := &logSink{}
	opts = append([]Option{WithLogger(log.New(sink, "", 0))}, opts...)
	s := NewServer(opts...)
	a := &Arith{block: make(chan struct{})}
	// Arith keeps no state a durable store should hold (the benchmarks
	// serve it with one).
	if err := s.Register(a, OutsideTransaction()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		select {
		case <-a.block:
		default:
			close(a.block)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, a, l.Addr().String(), sink
}

func dial(t testing.TB, addr string, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func atMostOnce() semantics.Policy { return semantics.AtMostOnce() }

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// startStockServer serves StdArith with a stock net/rpc server; cleanup
// closes the listener and the connections.
func startStockServer(t *testing.T) string {
	t.Helper()
	srv := stdrpc.NewServer()
	if err := srv.Register(new(StdArith)); err != nil {
		t.Fatal(err)
	}
	return serveEach(t, srv.ServeConn).addr
}

// acceptLoop serves each connection it accepts on loopback with serve, on
// its own goroutine, and keeps them; cleanup closes the listener and the
// connections, then waits for serve to return on each.
type acceptLoop struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func serveEach(t *testing.T, serve func(io.ReadWriteCloser)) *acceptLoop {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptLoop{addr: l.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns = append(a.conns, nc)
			a.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for _, nc := range a.accepted() {
			nc.Close()
		}
		wg.Wait()
	})
	return a
}

// accepted returns the connections accepted so far.
func (a *acceptLoop) accepted() []net.Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]net.Conn(nil), a.conns...)
}

// setIdleLook sets how often the transports' idle watchers look at their
// connections (idleLook) for the rest of the test, and restores it after.
// A watcher reads it when it starts. An hour keeps the watcher from giving
// an idle connection a reader during the test, so that what a caller finds
// is what it sees itself; a millisecond gives one at once. Tests that set
// it must not run in parallel.
func setIdleLook(t testing.TB, d time.Duration) {
	t.Helper()
	was := idleLook.Swap(int64(d))
	t.Cleanup(func() { idleLook.Store(was) })
}

// setInlineGrace sets how often the server's inline watcher looks at the
// requests running on the goroutines that read them (inlineGrace) for the
// rest of the test, and restores it after: one running at two looks in a
// row has its reading handed to another goroutine. A watcher reads it when
// it starts. A grace no call reaches (a minute) keeps every lone request on
// its reading goroutine; a nanosecond hands reading off on nearly every
// request. Tests that set it must not run in parallel.
func setInlineGrace(t testing.TB, d time.Duration) {
	t.Helper()
	was := inlineGrace.Swap(int64(d))
	t.Cleanup(func() { inlineGrace.Store(was) })
}

// tcpConnOf returns the client's current connection.
func tcpConnOf(t *testing.T, c *Client) *tcpConn {
	t.Helper()
	tr := c.t.(*tcpTransport)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.cur == nil {
		t.Fatal("the client has no connection")
	}
	return tr.cur
}

// readerOf returns who reads c now.
func readerOf(c *tcpConn) readState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read
}

// current returns the transport's current connection, or nil.
func (t *tcpTransport) current() *tcpConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

// deadlineConn is a net.Conn whose reads honour read deadlines as a
// socket's do (a deadline that has passed fails a read even when data is
// there) and whose data the test hands in. afterSet, if set, is called
// with each deadline once it is applied.
type deadlineConn struct {
	net.Conn // not used

	mu       sync.Mutex
	cond     sync.Cond
	deadline time.Time
	data     []byte
	closed   bool
	afterSet func(d time.Time) // called without mu, once d is applied
}

func newDeadlineConn() *deadlineConn {
	f := &deadlineConn{}
	f.cond.L = &f.mu
	return f
}

func (f *deadlineConn) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		switch {
		case f.closed:
			return 0, net.ErrClosed
		case !f.deadline.IsZero() && !time.Now().Before(f.deadline):
			return 0, os.ErrDeadlineExceeded
		case len(f.data) > 0:
			n := copy(p, f.data)
			f.data = f.data[n:]
			return n, nil
		}
		f.cond.Wait()
	}
}

func (f *deadlineConn) SetReadDeadline(d time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deadline = d
	if !d.IsZero() {
		time.AfterFunc(time.Until(d), func() {
			f.mu.Lock()
			f.cond.Broadcast()
			f.mu.Unlock()
		})
	}
	f.cond.Broadcast()
	if after := f.afterSet; after != nil {
		f.mu.Unlock()
		after(d)
		f.mu.Lock()
	}
	return nil
}

func (f *deadlineConn) give(b []byte) {
	f.mu.Lock()
	f.data = append(f.data, b...)
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *deadlineConn) Close() error {
	f.mu.Lock()
	f.closed = true
	f.cond.Broadcast()
	f.mu.Unlock()
	return nil
}

func (f *deadlineConn) Write(p []byte) (int, error) { return len(p), nil }

// tcpConnOver returns a client connection over f, of a transport with the
// default options that dials f again.
func tcpConnOver(f *deadlineConn) *tcpConn {
	o := defaultOptions()
	tr := newStreamTransport("test", func(context.Context) (net.Conn, error) { return f, nil }, &o)
	return newTCPConn(tr, f)
}

// makeReadingCaller makes the caller of call seq the reading caller of c,
// through the transitions register and beginReading make.
func makeReadingCaller(t *testing.T, c *tcpConn, seq uint64) {
	t.Helper()
	c.mu.Lock()
	c.setRead(readNone)
	c.setRead(readChosen)
	c.readerSeq = seq
	c.mu.Unlock()
	if !c.beginReading(seq) {
		t.Fatal("the chosen caller could not begin reading")
	}
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
