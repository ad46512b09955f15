package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Gate holds each Hold call until the test lets it go.
type Gate struct {
	entered chan int
	release map[int]chan struct{}
	once    map[int]*sync.Once
}

// newGate returns a gate for calls ids.
func newGate(ids ...int) *Gate {
	g := &Gate{entered: make(chan int, len(ids)), release: make(map[int]chan struct{}), once: make(map[int]*sync.Once)}
	for _, id := range ids {
		g.release[id] = make(chan struct{})
		g.once[id] = new(sync.Once)
	}
	return g
}

// open lets call id go.
func (g *Gate) open(id int) { g.once[id].Do(func() { close(g.release[id]) }) }

// openAll lets every call go.
func (g *Gate) openAll() {
	for id := range g.release {
		g.open(id)
	}
}

func (g *Gate) Hold(id int, reply *int) error {
	g.entered <- id
	<-g.release[id]
	*reply = id
	return nil
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

func readerOf(c *tcpConn) readState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read
}

// The caller of the only outstanding call reads its reply itself: while
// the call runs, the caller is the connection's reader, and after it nobody
// reads.
func TestCallerOfTheOnlyCallReadsItsOwnReply(t *testing.T) {
	setIdleLook(t, time.Hour)
	g := newGate(1)
	_, addr := startServerWith(t, g)
	t.Cleanup(g.openAll) // before the server's cleanup waits for the calls
	c := dial(t, addr)
	done := make(chan error, 1)
	go func() {
		var got int
		done <- c.Call(ctxT(t), "Gate.Hold", 1, &got)
	}()
	<-g.entered
	conn := tcpConnOf(t, c)
	if r := readerOf(conn); r != readCaller {
		t.Errorf("while the only call runs, the reader is %d, want the caller (%d)", r, readCaller)
	}
	g.open(1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := readerOf(conn); r != readNone {
		t.Errorf("after the call, the reader is %d, want nobody (%d)", r, readNone)
	}
}

// A caller that reads delivers other callers' replies; when its context
// ends before its own reply, a reader goroutine takes over for the calls
// still pending, and its own late reply is read and dropped.
func TestReadingCallerThatGivesUpHandsReadingOn(t *testing.T) {
	setIdleLook(t, time.Hour)
	g := newGate(1, 2, 3, 4)
	_, addr := startServerWith(t, g)
	t.Cleanup(g.openAll) // before the server's cleanup waits for the calls
	c := dial(t, addr)
	ctxA, cancelA := context.WithCancel(ctxT(t))
	defer cancelA()
	results := make(map[int]chan error)
	start := func(ctx context.Context, id int) {
		ch := make(chan error, 1)
		results[id] = ch
		go func() {
			var got int
			err := c.Call(ctx, "Gate.Hold", id, &got)
			if err == nil && got != id {
				err = errors.New("wrong reply")
			}
			ch <- err
		}()
		if got := <-g.entered; got != id {
			t.Fatalf("call %d entered, want %d", got, id)
		}
	}
	start(ctxA, 1) // the reader
	conn := tcpConnOf(t, c)
	// The server has call 1; its caller begins to read once its write has
	// returned. A call registered before that would have a reader goroutine
	// (see register).
	for began := false; !began; {
		conn.mu.Lock()
		began = conn.read == readCaller
		conn.mu.Unlock()
		runtime.Gosched()
	}
	start(ctxT(t), 2)
	start(ctxT(t), 3)
	if r := readerOf(conn); r != readCaller {
		t.Fatalf("reader %d, want the first caller", r)
	}
	g.open(2) // read by the first caller, for the second
	if err := <-results[2]; err != nil {
		t.Fatalf("call 2, read by call 1's caller: %v", err)
	}
	cancelA()
	err := <-results[1]
	if !errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("call 1, cancelled while it read: %v, want may-have-executed wrapping the cancel", err)
	}
	if r := readerOf(conn); r != readGoroutine {
		t.Fatalf("after the reading caller left with calls pending, the reader is %d, want a goroutine", r)
	}
	g.open(3)
	if err := <-results[3]; err != nil {
		t.Fatalf("call 3, read by the goroutine: %v", err)
	}
	g.open(1) // its late reply is read and dropped
	var got int
	g.open(4)
	go func() { <-g.entered }()
	if err := c.Call(ctxT(t), "Gate.Hold", 4, &got); err != nil || got != 4 {
		t.Fatalf("next call: %d, %v", got, err)
	}
	if conn2 := tcpConnOf(t, c); conn2 != conn {
		t.Error("the connection was replaced; want it kept through the abandoned call")
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
			// Wait until the close has reached the client's socket.
			deadline := time.Now().Add(5 * time.Second)
			for conn.probe() == probeEmpty {
				if time.Now().After(deadline) {
					t.Fatal("the close never reached the client")
				}
				time.Sleep(time.Millisecond)
			}
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

// A server's shutdown notice on a connection nobody reads is read by the
// reader the idle watcher gives it, and the client closes the connection.
func TestShutdownNoticeIsReadOnAnIdleConnection(t *testing.T) {
	setIdleLook(t, time.Millisecond)
	s, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var got int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &got); err != nil {
		t.Fatal(err)
	}
	conn := tcpConnOf(t, c)
	if err := s.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitNoticeRead(t, conn, "idle")
	tr := c.t.(*tcpTransport)
	tr.mu.Lock()
	cur := tr.cur
	tr.mu.Unlock()
	if cur != nil {
		t.Error("the client still uses a connection after the server's notice")
	}
}

// Streams the client cannot peek at (a pipe here; TLS too) keep a reader
// goroutine for their whole life, as every connection had before.
func TestUnprobeableStreamKeepsItsReader(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	if err := s.Register(&Arith{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := NewClient(NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		cn, sn := net.Pipe()
		go s.ServeConn(sn)
		return cn, nil
	}))
	t.Cleanup(func() { c.Close() })
	var got int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &got); err != nil || got != 3 {
		t.Fatalf("%d, %v", got, err)
	}
	conn := tcpConnOf(t, c)
	if conn.probe != nil {
		t.Fatal("a pipe has a probe")
	}
	if r := readerOf(conn); r != readGoroutine {
		t.Errorf("reader %d on a pipe, want a goroutine", r)
	}
}

// The server's inline watcher leaves with the server's last connection:
// Close does not wait for its next look, however far away.
func TestInlineWatcherEndsWithTheServer(t *testing.T) {
	setInlineGrace(t, time.Hour)
	s, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var got int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &got); err != nil {
		t.Fatal(err)
	}
	if !s.watch.on.Load() {
		t.Fatal("no inline watcher after a request ran inline")
	}
	c.Close()
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the inline watcher's next look")
	}
	if s.watch.on.Load() {
		t.Error("the inline watcher outlived Close")
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
	deadline := time.Now().Add(5 * time.Second)
	for ended.Load() != dials.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections closed by the client", ended.Load(), dials.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// A Unix socket is read by its callers as a TCP connection is, and the look
// before sending finds a close that came while it was idle.
func TestUnixSocketCallersReadAndLookBeforeSending(t *testing.T) {
	setIdleLook(t, time.Hour)
	path := t.TempDir() + "/semrpc.sock"
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Skipf("no Unix sockets here: %v", err)
	}
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	c, err := Dial(ctxT(t), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var got int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &got); err != nil || got != 3 {
		t.Fatalf("%d, %v", got, err)
	}
	conn := tcpConnOf(t, c)
	if conn.probe == nil {
		t.Fatal("a Unix socket has no probe")
	}
	if r := readerOf(conn); r != readNone {
		t.Fatalf("reader %d after the call, want nobody", r)
	}
	// The server closes its side (as a server restart would, say).
	for _, sc := range s.connList() {
		sc.close()
	}
	for deadline := time.Now().Add(5 * time.Second); conn.probe() == probeEmpty; {
		if time.Now().After(deadline) {
			t.Fatal("the close never reached the client")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(2 * lookAfter) // idle long enough to be looked at
	if err := c.Call(ctxT(t), "Arith.Add", Args{3, 4}, &got); err != nil || got != 7 {
		t.Fatalf("a NoRetry call after the server closed the idle connection: %d, %v", got, err)
	}
	if tcpConnOf(t, c) == conn {
		t.Error("the closed connection is still in use")
	}
}

// waitNoticeRead waits until the client has read the server's shutdown
// notice on conn and closed it.
func waitNoticeRead(t *testing.T, conn *tcpConn, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn.mu.Lock()
		err := conn.err
		conn.mu.Unlock()
		if err != nil {
			if !errors.Is(err, errGoneAway) {
				t.Errorf("connection ended with %v, want the server's notice read", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client never read the shutdown notice on its %s connection", what)
		}
		time.Sleep(time.Millisecond)
	}
}
