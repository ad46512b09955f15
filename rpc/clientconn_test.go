package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/coalesce"
	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/semantics"
)

// TestClientConnTransitionsAreTheListedOnes holds the transitions listed
// in clientconn.go's header comment and the tables setRead and setLife
// check against each other.
func TestClientConnTransitionsAreTheListedOnes(t *testing.T) {
	src, err := os.ReadFile("clientconn.go")
	if err != nil {
		t.Fatal(err)
	}
	reads, lives := map[string]readState{}, map[string]connLife{}
	for i, n := range readStateNames {
		reads[n] = readState(i)
	}
	for i, n := range connLifeNames {
		lives[n] = connLife(i)
	}
	listedRead, listedLife := map[[2]readState]bool{}, map[[2]connLife]bool{}
	for _, m := range regexp.MustCompile(`(?m)^//\t(\w+)\s+→\s+(\w+)\s`).FindAllStringSubmatch(string(src), -1) {
		rf, ok1 := reads[m[1]]
		rt, ok2 := reads[m[2]]
		lf, ok3 := lives[m[1]]
		lt, ok4 := lives[m[2]]
		switch {
		case ok1 && ok2:
			listedRead[[2]readState{rf, rt}] = true
		case ok3 && ok4:
			listedLife[[2]connLife{lf, lt}] = true
		default:
			t.Errorf("the comment lists %s → %s, which are not states of one machine", m[1], m[2])
		}
	}
	if len(listedRead) != len(readTransitions) {
		t.Errorf("%d read transitions listed, %d allowed", len(listedRead), len(readTransitions))
	}
	for tr := range readTransitions {
		if !listedRead[tr] {
			t.Errorf("%v → %v is allowed but not listed", tr[0], tr[1])
		}
	}
	if len(listedLife) != len(lifeTransitions) {
		t.Errorf("%d lifecycle transitions listed, %d allowed", len(listedLife), len(lifeTransitions))
	}
	for tr := range lifeTransitions {
		if !listedLife[tr] {
			t.Errorf("%v → %v is allowed but not listed", tr[0], tr[1])
		}
	}
}

func TestIllegalConnectionTransitionsPanic(t *testing.T) {
	f := newDeadlineConn()
	for _, tc := range []struct {
		name string
		do   func(c *tcpConn)
	}{
		{"none → caller (skipping chosen)", func(c *tcpConn) { c.setRead(readNone); c.setRead(readCaller) }},
		{"done → none", func(c *tcpConn) { c.setRead(readNone); c.setRead(readDone); c.setRead(readNone) }},
		{"goroutine → chosen", func(c *tcpConn) { c.setRead(readGoroutine); c.setRead(readChosen) }},
		{"failed → live", func(c *tcpConn) { c.setLife(lifeFailed); c.setLife(lifeLive) }},
		{"draining → live", func(c *tcpConn) { c.setLife(lifeDraining); c.setLife(lifeLive) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tcpConnOver(f)
			defer func() {
				if p := recover(); p == nil || !strings.Contains(p.(string), "illegal") {
					t.Fatalf("recovered %v, want an illegal-transition panic", p)
				}
			}()
			c.mu.Lock()
			defer c.mu.Unlock()
			tc.do(c)
		})
	}
}

// A caller blocked writing its own request to a server that stopped
// reading returns when its context ends, not when the write does: the
// request was not sent whole, so the call was not sent.
func TestWriteIsBoundedByTheCallersContext(t *testing.T) {
	a := serveEach(t, func(rwc io.ReadWriteCloser) {
		io.Copy(io.Discard, io.LimitReader(rwc, 1<<10)) // a little, then nothing
		<-t.Context().Done()
	})
	big := strings.Repeat("w", 64<<20)
	for _, p := range []semantics.Policy{semantics.NoRetry(), semantics.AtLeastOnce()} {
		c := dial(t, a.addr, WithSemantics(p))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		done := make(chan error, 1)
		go func() {
			var r string
			done <- c.Call(ctx, "Arith.Echo", big, &r)
		}()
		select {
		case err := <-done:
			cancel()
			if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%v: %v; want not sent, for the deadline", p.Kind(), err)
			}
		case <-time.After(5 * time.Second):
			cancel()
			t.Fatalf("%v: the call is still writing 5 s after its 100 ms deadline", p.Kind())
		}
	}
}

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

// Arguments that cannot be encoded never leave the client: the call is not
// executed, never may-have-executed, and the client goes on working. (A
// write that failed the connection before RoundTrip had taken its own call
// out of pending let fail() answer that call as may-have-executed.)
func TestUnencodableArgsAreNotExecutedNeverMaybeExecuted(t *testing.T) {
	_, a, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	err := c.Call(ctxT(t), "Arith.Add", nil, &r) // gob: cannot encode nil value
	if err == nil {
		t.Fatal("call with nil args succeeded")
	}
	if errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, ErrNotExecuted) {
		t.Errorf("unencodable args: %v; want not executed, never may-have-executed", err)
	}
	if n := a.calls.Load(); n != 0 {
		t.Errorf("method ran %d times", n)
	}
	// The client goes on working (it redials if it had to drop the connection).
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r); err != nil || r != 3 {
		t.Fatalf("next call: %d, %v", r, err)
	}
}

// A nil pointer argument, on which gob panics, fails its call not
// executed, and later calls on the client go on: no lock stays held by the
// panicking encode (one held without a defer blocked every later call for
// ever, deaf to its context, once the caller recovered from the panic as an
// HTTP server does).
func TestNilPointerArgsDoNotWedgeTheClient(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = errors.New("panic escaped Call")
				t.Errorf("Call panicked: %v", p)
			}
		}()
		err = c.Call(ctxT(t), "Arith.Mul", (*Args)(nil), &r)
	}()
	if err == nil || errors.Is(err, ErrMaybeExecuted) {
		t.Errorf("nil pointer args: %v; want a not-executed error", err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- c.Call(ctx, "Arith.Add", Args{1, 2}, &r)
	}()
	select {
	case err := <-done:
		if err != nil || r != 3 {
			t.Fatalf("next call: %d, %v", r, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: the call after a panicking encode never returned")
	}
}

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
func TestFailDoesNotTakeACallTheWriterCompleted(t *testing.T) {
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
func TestWriterIsNotHeldByOthersRequests(t *testing.T) {
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
func TestWaitForRoomInTheWriteBufferEndsWithTheContext(t *testing.T) {
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
func TestAnsweredCallDoesNotWaitForTheRestOfItsBatch(t *testing.T) {
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

// An interrupt acts on the turn of the caller it names only: a late one,
// of a caller whose turn is over, sets no deadline, so no read deadline is
// ever left for another reader to mistake for its own.
func TestInterruptOfAnEndedTurnLeavesNoDeadline(t *testing.T) {
	f := newDeadlineConn()
	c := tcpConnOver(f)
	makeReadingCaller(t, c, 7)
	c.interruptReader(6, context.Canceled) // another caller's
	if f.deadline != (time.Time{}) || (c.wasInterrupted() != nil) {
		t.Fatal("another caller's interrupt set a deadline on this caller's read")
	}
	c.interruptReader(7, context.Canceled)
	if (c.wasInterrupted() == nil) || f.deadline.IsZero() {
		t.Fatal("the reading caller's own interrupt set no deadline")
	}
	c.stopReading() // the turn ends: readNone
	if (c.wasInterrupted() != nil) || !f.deadline.IsZero() {
		t.Fatalf("the turn ended with its interrupt left (deadline %v)", f.deadline)
	}
	c.interruptReader(7, context.Canceled) // late, as context.AfterFunc may run it
	if (c.wasInterrupted() != nil) || !f.deadline.IsZero() {
		t.Fatal("a late interrupt set a deadline after its turn ended")
	}
}

// The interrupt of a caller whose ctx ended just as it stopped reading its
// own reply runs late (context.AfterFunc runs it after the caller's turn
// as reader ended), on a connection idle by then: the next call sends on
// that connection, and none is left draining. (A read deadline left by such
// an interrupt made the look before the next call take the healthy
// connection for a closed one: given up, draining with nothing pending, it
// stayed open with a reader goroutine waiting for a message that never
// came.)
func TestLateInterruptDoesNotMakeTheNextCallLeaveAnIdleConnection(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr)
	tr := c.t.(*tcpTransport)
	call := func() {
		t.Helper()
		var sum int
		if err := c.Call(context.Background(), "Arith.Add", Args{A: 1, B: 2}, &sum); err != nil || sum != 3 {
			t.Fatalf("Arith.Add = %d, %v; want 3, nil", sum, err)
		}
	}
	for range 20 {
		call()
		tr.mu.Lock()
		first := tr.cur
		tr.mu.Unlock()
		first.mu.Lock()
		idle := (first.read == readNone || first.read == readNoneSeen)
		first.mu.Unlock()
		if !idle {
			continue // the idle watcher gave it a reader meanwhile: try again
		}
		first.interruptCaller(1, context.Background()) // a late interrupt of the first call, as context.AfterFunc may run it
		call()
		tr.mu.Lock()
		second, draining := tr.cur, len(tr.draining)
		tr.mu.Unlock()
		if second != first || draining != 0 {
			t.Fatalf("a stale read deadline on an idle connection made the next call leave it (same conn %v, %d draining)", second == first, draining)
		}
		return
	}
	t.Skip("the connection was never idle after a call")
}

// The interrupt of a caller whose ctx ended as its reply came in runs late,
// after the connection went idle: the next call must still use the
// connection, and no connection may be left open beside it.
func TestLateInterruptOnAnIdleConnectionOpensNoOtherConnection(t *testing.T) {
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

// Sequential calls whose deadlines end about as their replies are read
// leave the client with one connection. A caller reading its own reply
// arms an interrupt on its ctx (context.AfterFunc); when ctx ends just as
// the reply is read, the interrupt runs after the caller left reading, and
// must neither leave a read deadline on the connection nor make the next
// call's look take the healthy connection for a closed one (which left it
// draining with a reader goroutine blocked on it for ever, and dialled
// another).
func TestCallsWhoseDeadlinesEndAsTheirRepliesArriveKeepOneConnection(t *testing.T) {
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
