package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/coalesce"
	"github.com/semrpc/semrpc/semantics"
)

// hangConn is a client-side net.Conn driven by the test: Write blocks
// until the connection is closed (a peer that stopped reading) unless
// writes are let through, Read returns EOF once readEOF is closed, and Close
// fails the blocked Write at once but returns only when closeGate is
// closed, so that the test can act while the transport's fail is between
// closing the connection and what follows.
type hangConn struct {
	writeStarted chan struct{} // closed at the first Write
	readEOF      chan struct{} // closed by the test: Read returns io.EOF
	closed       chan struct{} // closed by Close: blocked Writes and Reads fail
	closeGate    chan struct{} // closed by the test: Close returns
	startOnce    sync.Once
	closeOnce    sync.Once
}

func newHangConn() *hangConn {
	return &hangConn{
		writeStarted: make(chan struct{}),
		readEOF:      make(chan struct{}),
		closed:       make(chan struct{}),
		closeGate:    make(chan struct{}),
	}
}

func (g *hangConn) Write(p []byte) (int, error) {
	g.startOnce.Do(func() { close(g.writeStarted) })
	<-g.closed
	return 0, net.ErrClosed
}

func (g *hangConn) Read(p []byte) (int, error) {
	select {
	case <-g.readEOF:
		return 0, io.EOF
	case <-g.closed:
		return 0, net.ErrClosed
	}
}

func (g *hangConn) Close() error {
	g.closeOnce.Do(func() { close(g.closed) })
	<-g.closeGate
	return nil
}

func (g *hangConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (g *hangConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (g *hangConn) SetDeadline(time.Time) error      { return nil }
func (g *hangConn) SetReadDeadline(time.Time) error  { return nil }
func (g *hangConn) SetWriteDeadline(time.Time) error { return nil }

// A call completed by the writer as not sent (its write failed) goes back
// to the pool: the connection's fail, which found the call in the pending
// map just before, must not take it afterwards, or it completes whichever
// call reuses the pooled object (a wrong verdict for an unrelated call, and
// a stale value in its done channel).
func TestReviewHotpathFailDoesNotTakeACallCompletedByTheWriter(t *testing.T) {
	g := newHangConn()
	tr := NewStreamTransport(func(context.Context) (net.Conn, error) { return g, nil }).(*tcpTransport)
	res := make(chan error, 1)
	go func() {
		var r int
		res <- tr.RoundTrip(context.Background(), &Request{ServiceMethod: "Arith.Add", Args: Args{1, 2}}, &r)
	}()
	<-g.writeStarted // the request is being written, and the write hangs
	tr.mu.Lock()
	c := tr.cur
	tr.mu.Unlock()
	var x *pendingCall
	c.mu.Lock()
	for _, p := range c.pending {
		x = p
	}
	c.mu.Unlock()
	if x == nil {
		t.Fatal("the call is not pending")
	}
	// The reader sees the connection end: fail takes the pending calls and
	// closes the connection, which fails the write.
	close(g.readEOF)
	err := <-res
	if semantics.ClassOf(err) != semantics.ClassNotSent {
		t.Fatalf("a request whose write failed before any byte left: got %v (class %v), want not sent", err, semantics.ClassOf(err))
	}
	// The call went back to the pool; a new call reusing it starts afresh
	// (as getPending does).
	x.taken.Store(false)
	close(g.closeGate) // fail goes on
	tr.Close()         // waits for the reader, and so for fail
	stale := false
	select {
	case v := <-x.done:
		stale = true
		t.Errorf("fail completed a call that was already handed back to the pool: its done got %v", v)
	default:
	}
	if x.taken.Load() && !stale {
		t.Error("fail took a call that was already handed back to the pool")
	}
	x.taken.Store(true) // as the pool had it
}

// stallConn passes a real connection through, except its writes: the first
// waits for the test, the later ones hang until Close (a peer that stopped
// reading).
type stallConn struct {
	net.Conn
	writes    int
	entered   chan struct{} // closed when the first Write starts
	release   chan struct{} // closed by the test: the first Write goes on
	closed    chan struct{}
	closeOnce sync.Once
}

func (s *stallConn) Write(p []byte) (int, error) {
	s.writes++ // writes are serialized by the coalescer
	if s.writes == 1 {
		close(s.entered)
		<-s.release
		return s.Conn.Write(p)
	}
	<-s.closed
	return 0, net.ErrClosed
}

func (s *stallConn) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.Conn.Close()
}

// A caller that finds the connection idle writes its request; requests
// other callers queue meanwhile are not its own: their write (here one that
// hangs, the peer having stopped reading) must not keep it from returning
// its answer.
func TestReviewHotpathWriterIsNotHeldByOthersRequests(t *testing.T) {
	_, _, addr, _ := startServer(t)
	sc := &stallConn{entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
	tr := NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		sc.Conn = nc
		return sc, nil
	}).(*tcpTransport)
	defer tr.Close()

	type result struct {
		reply int
		err   error
	}
	call := func(a, b int, out chan<- result) {
		var r int
		err := tr.RoundTrip(context.Background(), &Request{ServiceMethod: "Arith.Add", Args: Args{a, b}}, &r)
		out <- result{r, err}
	}
	resA, resB := make(chan result, 1), make(chan result, 1)
	go call(1, 2, resA)
	<-sc.entered // A writes its request
	tr.mu.Lock()
	c := tr.cur
	tr.mu.Unlock()
	go call(3, 4, resB)
	for queued := false; !queued; { // B's request waits behind A's write
		queued = c.out.Queued() == 1
		if !queued {
			runtime.Gosched()
		}
	}
	close(sc.release)
	select {
	case r := <-resA:
		if r.err != nil || r.reply != 3 {
			t.Fatalf("A: got %d, %v; want 3, nil", r.reply, r.err)
		}
	case <-time.After(10 * time.Second): // a failure detector, not a timing assertion
		t.Fatal("A, answered, is still writing B's request to a peer that does not read")
	}
	tr.Close()
	r := <-resB
	if semantics.ClassOf(r.err) != semantics.ClassNotSent {
		t.Fatalf("B, whose request never left: got %v (class %v), want not sent", r.err, semantics.ClassOf(r.err))
	}
}

// A request that waits for room in the write buffer (a write hangs on a
// peer that does not read, and a megabyte is queued behind it) was not sent:
// its wait ends with its context, as the waits of a call not sent yet do.
func TestReviewHotpathWaitForBufferRoomEndsWithTheContext(t *testing.T) {
	g := newHangConn()
	close(g.closeGate) // Close returns at once
	tr := NewStreamTransport(func(context.Context) (net.Conn, error) { return g, nil }).(*tcpTransport)
	defer tr.Close()
	call := func(ctx context.Context, args any, out chan<- error) {
		var r string
		out <- tr.RoundTrip(ctx, &Request{ServiceMethod: "Arith.Echo", Args: args}, &r)
	}
	resA, resB, resC := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go call(context.Background(), "a", resA)
	<-g.writeStarted // A's write hangs
	tr.mu.Lock()
	c := tr.cur
	tr.mu.Unlock()
	go call(context.Background(), string(make([]byte, coalesce.MaxQueuedBytes)), resB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// C comes once B's megabyte is queued, and waits for room.
	for queued := false; !queued; {
		queued = c.out.Queued() == 1
		if !queued {
			runtime.Gosched()
		}
	}
	go call(ctx, "c", resC)
	for waiting := false; !waiting; {
		waiting = c.out.Waiting() == 1
		if !waiting {
			runtime.Gosched()
		}
	}
	cancel()
	select {
	case err := <-resC:
		if semantics.ClassOf(err) != semantics.ClassNotSent || !errors.Is(err, context.Canceled) {
			t.Errorf("C, which never reached the buffer: got %v (class %v), want not sent, canceled", err, semantics.ClassOf(err))
		}
	case <-time.After(10 * time.Second): // a failure detector, not a timing assertion
		t.Fatal("C's wait for room in the buffer did not end with its context")
	}
	tr.Close()
	for name, res := range map[string]chan error{"A": resA, "B": resB} {
		if err := <-res; semantics.ClassOf(err) != semantics.ClassNotSent {
			t.Errorf("%s, whose request never left: got %v, want not sent", name, err)
		}
	}
}

// splitConn passes a real connection through; its first Write waits for the
// test, its second sends all but the last byte and then hangs until Close
// (the peer stopped reading in the middle of a batch).
type splitConn struct {
	net.Conn
	writes    int
	entered   chan struct{} // closed when the first Write starts
	release   chan struct{} // closed by the test: the first Write goes on
	closed    chan struct{}
	closeOnce sync.Once
}

func (s *splitConn) Write(p []byte) (int, error) {
	s.writes++ // writes are serialized by the coalescer
	switch s.writes {
	case 1:
		close(s.entered)
		<-s.release
		return s.Conn.Write(p)
	case 2:
		n, err := s.Conn.Write(p[:len(p)-1])
		if err != nil {
			return n, err
		}
		<-s.closed
		return n, net.ErrClosed
	}
	<-s.closed
	return 0, net.ErrClosed
}

func (s *splitConn) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.Conn.Close()
}

// A call whose request left whole and whose answer came returns it, even
// while the write that carried its request still hangs on the rest of the
// batch; the call whose request was cut is not sent.
func TestReviewHotpathAnsweredCallDoesNotWaitForTheRestOfItsBatch(t *testing.T) {
	_, _, addr, _ := startServer(t)
	sc := &splitConn{entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
	tr := NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		sc.Conn = nc
		return sc, nil
	}).(*tcpTransport)
	defer tr.Close()

	type result struct {
		reply int
		err   error
	}
	call := func(a, b int, out chan<- result) {
		var r int
		err := tr.RoundTrip(context.Background(), &Request{ServiceMethod: "Arith.Add", Args: Args{a, b}}, &r)
		out <- result{r, err}
	}
	resW, resA, resB := make(chan result, 1), make(chan result, 1), make(chan result, 1)
	go call(0, 0, resW)
	<-sc.entered // W's write waits; A and B queue behind it, in this order
	tr.mu.Lock()
	c := tr.cur
	tr.mu.Unlock()
	queued := func(n int) {
		for ok := false; !ok; {
			ok = c.out.Queued() == n
			if !ok {
				runtime.Gosched()
			}
		}
	}
	go call(1, 2, resA)
	queued(1)
	go call(3, 4, resB)
	queued(2)
	close(sc.release)
	if r := <-resW; r.err != nil || r.reply != 0 {
		t.Fatalf("W: got %d, %v; want 0, nil", r.reply, r.err)
	}
	select {
	case r := <-resA:
		if r.err != nil || r.reply != 3 {
			t.Fatalf("A: got %d, %v; want 3, nil", r.reply, r.err)
		}
	case <-time.After(10 * time.Second): // a failure detector, not a timing assertion
		t.Fatal("A, answered, waits for the rest of its batch to be written")
	}
	tr.Close()
	if r := <-resB; semantics.ClassOf(r.err) != semantics.ClassNotSent {
		t.Fatalf("B, whose request was cut: got %v (class %v), want not sent", r.err, semantics.ClassOf(r.err))
	}
}
