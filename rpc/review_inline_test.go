package rpc

import (
	"bytes"
	"context"
	"encoding/gob"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// A caller that read its own reply and whose ctx ended just as it stopped
// reading leaves a past read deadline behind: its AfterFunc's interrupt
// runs after stop() could no longer prevent it, on a connection that is
// idle by then. The peek before the next call must not take that deadline
// for something the server sent: the connection is healthy, and a
// connection given up for it (draining, with nothing pending) stayed open
// with a reader goroutine waiting for a message that never comes.
func TestInlineReviewStaleDeadlineDoesNotDropIdleConn(t *testing.T) {
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

// deadlineConn is a net.Conn whose reads honour read deadlines as a
// socket's do (a deadline that has passed fails a read even when data is
// there) and whose data the test hands in. onSet, if set, is called with
// each deadline before it is applied, afterSet once it is.
type deadlineConn struct {
	net.Conn // not used

	mu       sync.Mutex
	cond     sync.Cond
	deadline time.Time
	data     []byte
	closed   bool
	onSet    func(d time.Time) // called without mu
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
	hook := f.onSet
	f.mu.Unlock()
	if hook != nil {
		hook(d)
	}
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

func (f *deadlineConn) setHook(h func(d time.Time)) {
	f.mu.Lock()
	f.onSet = h
	f.mu.Unlock()
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

// readMidMessage reads c as its reading caller does in the middle of a
// message, and returns the outcome, or fails the test if the read is still
// waiting after a few seconds (it should end within replyGrace).
func readMidMessage(t *testing.T, c *tcpConn, f *deadlineConn) (int, error) {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		var buf [8]byte
		n, err := deadlineReader{c}.Read(buf[:])
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-time.After(5 * time.Second):
		f.Close() // let the reader go
		<-done
		t.Fatal("the read went on without a deadline after its caller's ctx ended")
		return 0, nil
	}
}

func newReviewConn(f *deadlineConn) *tcpConn {
	o := defaultOptions()
	tr := newStreamTransport("review", func(context.Context) (net.Conn, error) { return f, nil }, &o)
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

// An interrupt acts on the turn of the caller it names only: a late one,
// of a caller whose turn is over, sets no deadline, so no read deadline is
// ever left for another reader to mistake for its own.
func TestInterruptOfAnEndedTurnLeavesNoDeadline(t *testing.T) {
	f := newDeadlineConn()
	c := newReviewConn(f)
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

// A reading caller interrupted in the middle of a message gives the
// message replyGrace to come whole: a second interrupt does not cut the
// grace short.
func TestInterruptedReaderGivesTheMessageItsGrace(t *testing.T) {
	f := newDeadlineConn()
	c := newReviewConn(f)
	makeReadingCaller(t, c, 3)
	c.interruptReader(3, context.Canceled)
	f.mu.Lock()
	f.afterSet = func(d time.Time) {
		if d.IsZero() || d.Before(time.Now()) {
			return
		}
		// The grace has started; a second interrupt comes, then the rest
		// of the message.
		f.mu.Lock()
		f.afterSet = nil
		f.mu.Unlock()
		c.interruptReader(3, context.Canceled)
		f.give([]byte("rest"))
	}
	f.mu.Unlock()
	n, err := readMidMessage(t, c, f)
	if err != nil || n == 0 {
		t.Fatalf("read = %d, %v; want the rest of the message, which came within its grace", n, err)
	}
}

// An interrupted reader whose message does not come whole within the
// grace fails the read.
func TestInterruptedReaderFailsAMessageThatStalls(t *testing.T) {
	f := newDeadlineConn()
	c := newReviewConn(f)
	makeReadingCaller(t, c, 3)
	c.interruptReader(3, context.Canceled)
	if _, err := readMidMessage(t, c, f); err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("read = %v; want the stall reported", err)
	}
}

// A caller reading for its own reply whose ctx ends stops between
// messages, and a reader goroutine reads on. It looked at its ctx only when
// nothing was buffered: with the start of the next message already in
// (another caller's reply, arriving after the message the ctx ended in),
// it read that message too, on its own grace, and when the message took
// longer than replyGrace to come whole the connection was failed, and the
// other caller with it, though its reply was coming.
func TestInlineReviewEndedReaderStopsBetweenMessages(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	o := defaultOptions()
	tr := newTCPTransport("tcp", l.Addr().String(), &o)
	defer tr.Close()

	server := make(chan net.Conn, 1)
	go func() {
		sc, err := l.Accept()
		if err != nil {
			close(server)
			return
		}
		server <- sc
	}()

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	errA := make(chan error, 1)
	go func() {
		var r int
		errA <- tr.RoundTrip(ctxA, &Request{ServiceMethod: "Arith.Add", Args: Args{A: 1}}, &r)
	}()
	sc := <-server
	if sc == nil {
		t.Fatal("no connection")
	}
	defer sc.Close()
	dec := gob.NewDecoder(sc)
	readRequest := func() wireRequest {
		var req wireRequest
		var args Args
		if err := dec.Decode(&req); err != nil {
			t.Fatal(err)
		}
		if err := dec.Decode(&args); err != nil {
			t.Fatal(err)
		}
		return req
	}
	readRequest() // A's: A reads the connection for its reply

	type result struct {
		r   int
		err error
	}
	resB := make(chan result, 1)
	go func() {
		var r int
		err := tr.RoundTrip(context.Background(), &Request{ServiceMethod: "Arith.Add", Args: Args{A: 2}}, &r)
		resB <- result{r, err}
	}()
	reqB := readRequest()

	// M1 answers a call nobody waits for; M2 is B's reply.
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	enc.Encode(&wireResponse{ServiceMethod: "Arith.Add", Seq: 1 << 40})
	enc.Encode(0)
	m1 := len(buf.Bytes())
	enc.Encode(&wireResponse{ServiceMethod: "Arith.Add", Seq: reqB.Seq})
	enc.Encode(7)
	stream := buf.Bytes()

	sc.Write(stream[:3])              // A is in the middle of M1
	time.Sleep(20 * time.Millisecond) // (reading it)
	cancelA()                         // M1 gets replyGrace
	time.Sleep(10 * time.Millisecond) //
	sc.Write(stream[3 : m1+3])        // M1 whole, and the start of M2
	time.Sleep(4 * replyGrace)        // M2 comes slowly, past A's grace
	sc.Write(stream[m1+3:])

	if err := <-errA; semantics.ClassOf(err) != semantics.ClassMaybeExecuted {
		t.Errorf("A: %v; want may-have-executed (its ctx ended)", err)
	}
	select {
	case r := <-resB:
		if r.err != nil || r.r != 7 {
			t.Fatalf("B = %d, %v; want 7, nil: its reply came whole", r.r, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("B's reply was not delivered")
	}
}

// The caller that registers a call on an idle connection is to read its
// replies, but first it writes its request. A server that stops reading
// until the replies it is writing are read (its running calls are at their
// limit, each waiting to write its reply) then held that caller in its
// write, and with it every call that registered behind it: neither side
// read. The permanent reader goroutine this replaced always read.
func TestInlineReviewReaderHeldWritingDoesNotStallOthers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const small = 64 << 10
	o := defaultOptions()
	o.maxMsg = 64 << 20
	tr := newStreamTransport("review", func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err == nil {
			nc.(*net.TCPConn).SetReadBuffer(small)
			nc.(*net.TCPConn).SetWriteBuffer(small)
		}
		return nc, err
	}, &o)
	defer tr.Close()

	server := make(chan net.Conn, 1)
	go func() {
		sc, err := l.Accept()
		if err != nil {
			close(server)
			return
		}
		sc.(*net.TCPConn).SetReadBuffer(small)
		sc.(*net.TCPConn).SetWriteBuffer(small)
		server <- sc
	}()
	ctx := ctxT(t)
	call := func(args any, reply any) error {
		return tr.RoundTrip(ctx, &Request{ServiceMethod: "Echo.Echo", Args: args}, reply)
	}

	// A's request is larger than the sockets hold: A writes until the
	// server reads, which it does not do until B's reply is read.
	big := string(make([]byte, 16<<20))

	// A first call, answered, leaves the connection idle.
	first := make(chan error, 1)
	go func() {
		var r string
		first <- call("hello", &r)
	}()
	sc := <-server
	if sc == nil {
		t.Fatal("no connection")
	}
	defer sc.Close()
	dec := gob.NewDecoder(sc)
	enc := gob.NewEncoder(sc)
	var req wireRequest
	var arg string
	if err := dec.Decode(&req); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&arg); err != nil {
		t.Fatal(err)
	}
	enc.Encode(&wireResponse{ServiceMethod: req.ServiceMethod, Seq: req.Seq})
	enc.Encode(arg)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	c := tr.cur
	tr.mu.Unlock()

	errA := make(chan error, 1)
	go func() {
		var r string
		errA <- call(big, &r)
	}()
	for {
		// A has registered (and, unless the idle watcher gave the
		// connection a reader goroutine first, is to read).
		c.mu.Lock()
		registered := len(c.pending) > 0
		c.mu.Unlock()
		if registered {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	type result struct {
		n   int
		err error
	}
	resB := make(chan result, 1)
	go func() {
		var r string
		err := call("b", &r)
		resB <- result{len(r), err}
	}()
	// The server answers B (its request is behind A's: seq req.Seq+2) with
	// a reply larger than the sockets hold, and reads nothing meanwhile.
	go func() {
		enc.Encode(&wireResponse{ServiceMethod: "Echo.Echo", Seq: req.Seq + 2})
		enc.Encode(big)
		// Then it reads again, and answers A.
		var reqA wireRequest
		var argA string
		if dec.Decode(&reqA) == nil && dec.Decode(&argA) == nil {
			enc.Encode(&wireResponse{ServiceMethod: reqA.ServiceMethod, Seq: reqA.Seq})
			enc.Encode("a")
		}
	}()
	select {
	case r := <-resB:
		if r.err != nil || r.n != len(big) {
			t.Fatalf("B = %d bytes, %v; want its whole reply", r.n, r.err)
		}
	case <-time.After(5 * time.Second):
		sc.Close() // let everybody go
		t.Fatal("B's reply was never read: its caller waits on A, held writing to a server that waits for B's reply to be read")
	}
	if err := <-errA; err != nil {
		t.Fatalf("A: %v", err)
	}
}
