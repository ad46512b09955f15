package rpc

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
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
	// The chosen caller begins to read once its write has returned, which
	// may be after the server has the call.
	testwait.For(t, "the chosen caller to begin reading", func() bool { return readerOf(conn) != readChosen })
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
	testwait.For(t, "the close to reach the client", func() bool { return conn.probe() != probeEmpty })
	time.Sleep(2 * lookAfter) // idle long enough to be looked at
	if err := c.Call(ctxT(t), "Arith.Add", Args{3, 4}, &got); err != nil || got != 7 {
		t.Fatalf("a NoRetry call after the server closed the idle connection: %d, %v", got, err)
	}
	if tcpConnOf(t, c) == conn {
		t.Error("the closed connection is still in use")
	}
}

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

// A reading caller interrupted in the middle of a message gives the
// message replyGrace to come whole: a second interrupt does not cut the
// grace short.
func TestInterruptedReaderGivesTheMessageItsGrace(t *testing.T) {
	f := newDeadlineConn()
	c := tcpConnOver(f)
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
	c := tcpConnOver(f)
	makeReadingCaller(t, c, 3)
	c.interruptReader(3, context.Canceled)
	if _, err := readMidMessage(t, c, f); err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("read = %v; want the stall reported", err)
	}
}

// A caller reading for its own reply whose ctx ends stops between
// messages, even with the start of the next one (another caller's reply)
// already buffered, and a reader goroutine reads on. Were it to read that
// message too, on its own grace, a message taking longer than replyGrace
// to come whole would fail the connection, and the other caller with it,
// though its reply was coming.
func TestReaderWhoseContextEndedStopsBetweenMessages(t *testing.T) {
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
// replies, but first it writes its request; while it is held writing, the
// replies of the calls registered behind it are still read. Against a
// server that stops reading until the replies it is writing are read (its
// running calls at their limit, each waiting to write its reply), a caller
// held in its write would otherwise hold every call behind it, with
// neither side reading, where a reader goroutine per connection always
// read.
func TestCallerHeldWritingItsRequestDoesNotKeepOthersRepliesUnread(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const small = 64 << 10
	o := defaultOptions()
	o.maxMsg = 64 << 20
	tr := newStreamTransport("test", func(ctx context.Context) (net.Conn, error) {
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

// reflectZero, given to a gob decoder's DecodeValue, reads a value and
// drops it.
var reflectZero = reflect.Value{}

// A call whose context ends while its reply is being decoded returns
// promptly, may-have-executed, as the Transport contract says, even when
// the peer sent the reply's header and stalled in the middle of its body:
// the wait for the decode is bounded.
func TestCallCancelledDuringAStalledReplyBodyReturnsPromptly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srvDone := make(chan struct{})
	release := make(chan struct{})
	go func() {
		defer close(srvDone)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		dec := gob.NewDecoder(nc)
		var req wireRequest
		if dec.Decode(&req) != nil || dec.DecodeValue(reflectZero) != nil {
			return
		}
		var buf bytes.Buffer
		enc := gob.NewEncoder(&buf)
		enc.Encode(&wireResponse{ServiceMethod: req.ServiceMethod, Seq: req.Seq})
		enc.Encode(Quotient{Quo: 123456, Rem: 654321})
		b := buf.Bytes()
		nc.Write(b[:len(b)-2]) // all but the end of the body, then stall
		<-release
	}()
	defer func() { close(release); <-srvDone }()

	c := dial(t, l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	var q Quotient
	go func() { done <- c.Call(ctx, "Arith.Divide", Args{7, 2}, &q) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want may-have-executed, wrapping the deadline", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("call did not return after its deadline while its reply body stalled")
	}
}
