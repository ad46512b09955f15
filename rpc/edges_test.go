package rpc

import (
	"context"
	"crypto/tls"
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	netrpc "net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Edge is a service for the contract's edges.
type Edge struct {
	runs    atomic.Int64
	release chan struct{}
	started chan struct{}
	ended   chan error // Hold's context error, when its context ended
}

func newEdge() *Edge {
	return &Edge{release: make(chan struct{}), started: make(chan struct{}, 16), ended: make(chan error, 16)}
}

type BigArgs struct{ N int }

// Big returns a reply of args.N bytes.
func (e *Edge) Big(args BigArgs, reply *[]byte) error {
	e.runs.Add(1)
	*reply = make([]byte, args.N)
	return nil
}

// Hold runs until released; it reports its context's end as its error.
func (e *Edge) Hold(ctx context.Context, args int, reply *int) error {
	e.runs.Add(1)
	e.started <- struct{}{}
	select {
	case <-ctx.Done():
		e.ended <- ctx.Err()
		return ctx.Err()
	case <-e.release:
		*reply = args
		return nil
	}
}

// Inc counts its runs.
func (e *Edge) Inc(args int, reply *int) error {
	*reply = int(e.runs.Add(1))
	return nil
}

type Boxed struct{ V any }

func (e *Edge) Box(args Boxed, reply *int) error {
	e.runs.Add(1)
	return nil
}

type unregistered struct{ X int }

func serveEdge(t *testing.T, opts ...Option) (*Server, *Edge, string) {
	t.Helper()
	srv, _, addr, _ := startServer(t, opts...)
	e := newEdge()
	if err := srv.Register(e); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-e.release:
		default:
			close(e.release)
		}
	})
	return srv, e, addr
}

// dropFirstReply is a transport that delivers the first attempt but loses
// its reply, then keeps the link down for down, then works.
type dropFirstReply struct {
	Transport
	down time.Duration
	mu   sync.Mutex
	upAt time.Time
	sent atomic.Int64
}

func (d *dropFirstReply) RoundTrip(ctx context.Context, req *Request, reply any) error {
	if req.ServiceMethod == openMethod || req.ServiceMethod == closeMethod {
		return d.Transport.RoundTrip(ctx, req, reply)
	}
	d.mu.Lock()
	n := d.sent.Add(1)
	if n == 1 {
		d.upAt = time.Now().Add(d.down)
	}
	up := d.upAt
	d.mu.Unlock()
	if n == 1 {
		var lost int
		if err := d.Transport.RoundTrip(ctx, req, &lost); err != nil {
			return err
		}
		return semantics.MaybeExecuted(errors.New("test: reply dropped"))
	}
	if time.Now().Before(up) {
		return semantics.NotSent(errors.New("test: link down"))
	}
	return d.Transport.RoundTrip(ctx, req, reply)
}

func streamTo(addr string) Transport {
	return NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	})
}

// R11, R12: a retry that arrives after the session's lease has run out is
// never taken for a new session: the call ran once and the caller is told
// it may have run.
func TestRetryAfterLeaseExpiryIsNeverRunAgain(t *testing.T) {
	table := semantics.NewTable(&semantics.TableConfig{Lease: 300 * time.Millisecond})
	_, e, addr := serveEdge(t, WithTable(table))
	tr := &dropFirstReply{Transport: streamTo(addr), down: 600 * time.Millisecond}
	c := NewClient(tr, WithSemantics(semantics.AtMostOnce(semantics.Backoff(20*time.Millisecond, 50*time.Millisecond))))
	defer c.Close()
	var r int
	err := c.Call(ctxT(t), "Edge.Inc", 1, &r)
	if runs := e.runs.Load(); runs != 1 {
		t.Fatalf("the call ran %d times; at most once was promised", runs)
	}
	if err == nil || !errors.Is(err, ErrMaybeExecuted) || errors.Is(err, ErrNotExecuted) {
		t.Fatalf("err = %v; want a may-have-executed verdict", err)
	}
	if !strings.Contains(err.Error(), "at-most-once") {
		t.Errorf("error does not name the policy: %v", err)
	}
}

// R10, R12: a request for a session the server never opened is
// refused whatever its Ack says.
func TestRequestOnUnopenedSessionIsRefused(t *testing.T) {
	_, e, addr := serveEdge(t)
	tr := streamTo(addr)
	defer tr.Close()
	h := semantics.Header{Client: semantics.NewClientID(), Seq: 1, Ack: 1}
	var open OpenReply
	if err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: openMethod, Args: &OpenArgs{Version: 2}}, &open); err != nil {
		t.Fatal(err)
	}
	h.Epoch = open.Epoch
	var r int
	err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "Edge.Inc", Header: &h, Args: 1}, &r)
	if !errors.Is(err, semantics.ErrSessionExpired) || e.runs.Load() != 0 {
		t.Fatalf("unopened session: %v, %d runs; want ErrSessionExpired and no run", err, e.runs.Load())
	}
}

// R17: a method runs under the server's context, not the connection's:
// when the connection drops mid-call, the call's answer is the method's
// result, never "context canceled".
func TestLostConnectionIsNotRecordedAsTheAnswer(t *testing.T) {
	_, e, addr := serveEdge(t)
	var mu sync.Mutex
	var conns []net.Conn
	tr := NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
		}
		return nc, err
	})
	c := NewClient(tr, WithSemantics(semantics.AtMostOnce(semantics.Backoff(10*time.Millisecond, 20*time.Millisecond))))
	defer c.Close()
	done := make(chan error, 1)
	var r int
	go func() { done <- c.Call(ctxT(t), "Edge.Hold", 7, &r) }()
	<-e.started
	mu.Lock()
	for _, nc := range conns {
		nc.Close()
	}
	mu.Unlock()
	time.Sleep(50 * time.Millisecond) // the retry reaches the server and waits for the original
	close(e.release)
	if err := <-done; err != nil || r != 7 {
		t.Fatalf("call: %d, %v; want 7, nil", r, err)
	}
	if n := e.runs.Load(); n != 1 {
		t.Fatalf("ran %d times", n)
	}
}

// R17: the caller's deadline travels with the request and ends the
// method's context.
func TestCallerDeadlineEndsTheMethodContext(t *testing.T) {
	_, e, addr := serveEdge(t)
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var r int
	err := c.Call(ctx, "Edge.Hold", 1, &r)
	// The method's context and the caller's end at about the same time:
	// the caller sees its own deadline, or the method's answer to it.
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrApplication) {
		t.Fatalf("err = %v", err)
	}
	select {
	case err := <-e.ended:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the method's context ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the method's context did not end at the caller's deadline")
	}
}

// R2: a reply over the message limit is not sent; the caller learns the
// method ran and its reply is unusable, and no policy runs it again.
func TestOversizedReplyIsExecutedNeverRetried(t *testing.T) {
	for _, p := range []semantics.Policy{semantics.NoRetry(), semantics.AtLeastOnce(), semantics.AtMostOnce()} {
		t.Run(p.Kind().String(), func(t *testing.T) {
			_, e, addr := serveEdge(t)
			c := dial(t, addr, WithSemantics(p))
			var r []byte
			err := c.Call(ctxT(t), "Edge.Big", BigArgs{N: DefaultMaxMessageSize + 1}, &r)
			if !errors.Is(err, ErrReplyUnusable) || !errors.Is(err, ErrMessageTooLarge) {
				t.Fatalf("err = %v; want ErrReplyUnusable and ErrMessageTooLarge", err)
			}
			if errors.Is(err, ErrApplication) || errors.Is(err, ErrNotExecuted) || errors.Is(err, ErrMaybeExecuted) {
				t.Errorf("err = %v carries another verdict", err)
			}
			if n := e.runs.Load(); n != 1 {
				t.Errorf("ran %d times, want 1", n)
			}
			// The connection is still good.
			if err := c.Call(ctxT(t), "Edge.Big", BigArgs{N: 10}, &r); err != nil || len(r) != 10 {
				t.Fatalf("next call: %d bytes, %v", len(r), err)
			}
		})
	}
}

// R1: a call whose arguments cannot be encoded fails alone, not sent;
// a call pending on the same connection is untouched and the connection
// stays in use.
func TestUnencodableArgsFailAlone(t *testing.T) {
	_, e, addr := serveEdge(t)
	dials := atomic.Int64{}
	tr := NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	})
	c := NewClient(tr)
	defer c.Close()
	held := make(chan error, 1)
	var hr int
	go func() { held <- c.Call(ctxT(t), "Edge.Hold", 5, &hr) }()
	<-e.started
	var r int
	for _, args := range []any{nil, (*Boxed)(nil), Boxed{V: unregistered{1}}} {
		err := c.Call(ctxT(t), "Edge.Box", args, &r)
		if err == nil || !errors.Is(err, ErrNotExecuted) || errors.Is(err, ErrMaybeExecuted) {
			t.Errorf("args %#v: %v; want not executed", args, err)
		}
	}
	gob.Register(registered{})
	if err := c.Call(ctxT(t), "Edge.Box", Boxed{V: registered{2}}, &r); err != nil {
		t.Fatalf("a good call after the bad ones: %v", err)
	}
	close(e.release)
	if err := <-held; err != nil || hr != 5 {
		t.Fatalf("the pending call: %d, %v", hr, err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials: the bad calls broke the connection", n)
	}
	if n := e.runs.Load(); n != 2 { // Hold and the good Box
		t.Errorf("%d runs, want 2", n)
	}
}

type registered struct{ Y int }

// R14: a closed client ends its session on the server.
func TestClosedClientsLeaveNoSessions(t *testing.T) {
	srv, _, addr := serveEdge(t)
	for i := 0; i < 50; i++ {
		c, err := Dial(ctxT(t), "tcp", addr, WithSemantics(semantics.AtMostOnce()))
		if err != nil {
			t.Fatal(err)
		}
		var r int
		if err := c.Call(ctxT(t), "Edge.Inc", 1, &r); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if n := srv.Table().Len(); n != 0 {
		t.Fatalf("%d sessions left after every client closed", n)
	}
}

// R13: a window above the server's per-session cap is agreed down at
// Open, and one slow call does not stall the calls after it.
func TestWindowAgreedAndSlowCallDoesNotStall(t *testing.T) {
	table := semantics.NewTable(&semantics.TableConfig{MaxCalls: 16})
	_, e, addr := serveEdge(t, WithTable(table))
	c := dial(t, addr, WithSemantics(semantics.AtMostOnce(semantics.Window(5000))))
	held := make(chan error, 1)
	var hr int
	go func() { held <- c.Call(ctxT(t), "Edge.Hold", 1, &hr) }()
	<-e.started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 100; i++ {
		var r int
		if err := c.Call(ctx, "Edge.Inc", i, &r); err != nil {
			t.Fatalf("call %d behind the slow one: %v", i, err)
		}
	}
	close(e.release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
}

// R18: after Shutdown, a call is told it did not run.
func TestCallAfterShutdownIsNotExecuted(t *testing.T) {
	for i := 0; i < 20; i++ {
		srv := NewServer(WithLogger(discardLogger()))
		e := newEdge()
		srv.Register(e)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		c, err := Dial(ctxT(t), "tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		var r int
		if err := c.Call(ctxT(t), "Edge.Inc", 1, &r); err != nil {
			t.Fatal(err)
		}
		if err := srv.Shutdown(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		err = c.Call(ctxT(t), "Edge.Inc", 1, &r)
		if !errors.Is(err, ErrNotExecuted) || errors.Is(err, ErrMaybeExecuted) {
			t.Fatalf("run %d: call after Shutdown: %v; want not executed", i, err)
		}
		c.Close()
	}
}

// R4: errors name the policy used and the real cause.
func TestGiveUpErrorsNameThePolicyAndCause(t *testing.T) {
	_, e, addr := serveEdge(t)
	t.Run("exactly-once on a non-durable server", func(t *testing.T) {
		c := dial(t, addr)
		var r int
		err := c.Call(ctxT(t), "Edge.Inc", 1, &r, WithSemantics(semantics.ExactlyOnce()))
		if !errors.Is(err, semantics.ErrNotDurable) || !errors.Is(err, ErrNotExecuted) || !strings.Contains(err.Error(), "exactly-once") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("window starvation", func(t *testing.T) {
		c := dial(t, addr, WithSemantics(semantics.AtMostOnce(semantics.Window(1))))
		done := make(chan error, 1)
		var hr int
		go func() { done <- c.Call(ctxT(t), "Edge.Hold", 1, &hr) }()
		<-e.started
		// Fill every retired session too, then one more must wait.
		for i := 0; i < maxRetired; i++ {
			go func() { c.Call(ctxT(t), "Edge.Hold", 1, &hr) }()
			<-e.started
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		var r int
		err := c.Call(ctx, "Edge.Inc", 1, &r)
		if !errors.Is(err, ErrNotExecuted) || !strings.Contains(err.Error(), "at-most-once") || !strings.Contains(err.Error(), "window slot") {
			t.Fatalf("err = %v", err)
		}
		close(e.release)
		<-done
	})
	t.Run("closed client", func(t *testing.T) {
		c := dial(t, addr)
		c.Close()
		var r int
		err := c.Call(ctxT(t), "Edge.Inc", 1, &r, WithSemantics(semantics.AtMostOnce()))
		if !errors.Is(err, ErrClientClosed) || !errors.Is(err, ErrNotExecuted) || !strings.Contains(err.Error(), "at-most-once") {
			t.Fatalf("err = %v", err)
		}
	})
}

// A reply that cannot be decoded is its own class: the method ran.
func TestUndecodableReplyIsUnusableNotApplication(t *testing.T) {
	_, e, addr := serveEdge(t)
	c := dial(t, addr, WithSemantics(semantics.AtLeastOnce()))
	var r int
	err := c.Call(ctxT(t), "Edge.Inc", 1, r) // by value
	if !errors.Is(err, ErrReplyUnusable) || errors.Is(err, ErrApplication) || !strings.Contains(err.Error(), "pointer") {
		t.Fatalf("err = %v", err)
	}
	var s string
	err = c.Call(ctxT(t), "Edge.Inc", 1, &s) // wrong type
	if !errors.Is(err, ErrReplyUnusable) || errors.Is(err, ErrApplication) {
		t.Fatalf("err = %v", err)
	}
	if n := e.runs.Load(); n != 2 {
		t.Errorf("ran %d times, want 2 (never retried)", n)
	}
	if err := c.Call(ctxT(t), "Edge.Inc", 1, &r); err != nil {
		t.Fatalf("the connection is out of step: %v", err)
	}
}

type StockArith int

func (StockArith) Add(args Args, reply *int) error { *reply = args.A + args.B; return nil }

// R3: an unknown method is the same refusal from a stock net/rpc
// server and from ours: not executed, never retried.
func TestUnknownMethodSameClassOnStockAndSemrpcServers(t *testing.T) {
	stock := netrpc.NewServer()
	stock.Register(StockArith(0))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go stock.Accept(l)
	_, _, ours := serveEdge(t)
	for name, addr := range map[string]string{"stock": l.Addr().String(), "semrpc": ours} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr, WithSemantics(semantics.AtLeastOnce()))
			var r int
			for _, m := range []string{"Nope.Add", "StockArith.Nope"} {
				err := c.Call(ctxT(t), m, Args{1, 2}, &r)
				var re *RejectedError
				if !errors.As(err, &re) || re.Code != CodeUnknownMethod || !errors.Is(err, ErrUnknownMethod) ||
					!errors.Is(err, ErrNotExecuted) || errors.Is(err, ErrApplication) {
					t.Errorf("%s: %v", m, err)
				}
				if st := c.Stats(); st.Run.Retries != 0 {
					t.Errorf("%s was retried", m)
				}
			}
		})
	}
}

// R3: a TLS verification failure fails at once under every policy.
func TestTLSVerificationFailureIsPermanent(t *testing.T) {
	srvCfg, _ := selfSigned(t)
	_, wrongCA := selfSigned(t)
	srv := NewServer(WithLogger(discardLogger()))
	srv.Register(newEdge())
	l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	for _, p := range []semantics.Policy{semantics.NoRetry(), semantics.AtLeastOnce(), semantics.AtMostOnce(), semantics.ExactlyOnce()} {
		tr := NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
			d := tls.Dialer{Config: wrongCA}
			return d.DialContext(ctx, "tcp", l.Addr().String())
		})
		c := NewClient(tr, WithSemantics(p))
		start := time.Now()
		var r int
		err := c.Call(context.Background(), "Edge.Inc", 1, &r)
		if !errors.Is(err, ErrNotExecuted) || time.Since(start) > 3*time.Second {
			t.Errorf("%v: %v after %v; want not executed at once", p.Kind(), err, time.Since(start))
		}
		c.Close()
	}
}

// R3: a malformed address fails Dial; an unreachable port fails at once.
func TestBadAddressFailsAtOnce(t *testing.T) {
	if _, err := Dial(ctxT(t), "tcp", "no-port-here"); !errors.Is(err, ErrNotExecuted) {
		t.Errorf("Dial without a port: %v", err)
	}
	c, err := Dial(ctxT(t), "tcp", "127.0.0.1:99999", WithSemantics(semantics.AtLeastOnce()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	var r int
	err = c.Call(context.Background(), "Edge.Inc", 1, &r)
	if !errors.Is(err, ErrNotExecuted) || time.Since(start) > 3*time.Second {
		t.Errorf("bad port: %v after %v", err, time.Since(start))
	}
}

// R7: a client can start before its server; retrying policies wait
// for it, NoRetry fails fast and says the call did not run.
func TestClientStartedBeforeServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := Dial(ctxT(t), "tcp", addr)
	if err != nil {
		t.Fatalf("Dial before the server is up: %v", err)
	}
	defer c.Close()
	var r int
	if err := c.Call(ctxT(t), "Edge.Inc", 1, &r); !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("NoRetry with no server: %v", err)
	}
	if _, err := Dial(ctxT(t), "tcp", addr, WithEagerDial()); !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("eager Dial with no server: %v", err)
	}
	e := newEdge()
	srv := NewServer(WithLogger(discardLogger()))
	srv.Register(e)
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		srv.Serve(l)
	}()
	defer srv.Close()
	var wg sync.WaitGroup
	for _, p := range []semantics.Policy{semantics.AtLeastOnce(), semantics.AtMostOnce()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r int
			if err := c.Call(ctxT(t), "Edge.Inc", 1, &r, WithSemantics(p)); err != nil {
				t.Errorf("%v before the server was up: %v", p.Kind(), err)
			}
		}()
	}
	wg.Wait()
}

// R8: nothing retries forever: a retrying call whose context has no
// deadline stops retrying at DefaultRetryTimeout (shortened here), also
// against a server that never comes up, and says the call did not run.
func TestRetryingCallsWithoutDeadlineAreBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := dial(t, addr)
	c.opts.retryTimeout = 300 * time.Millisecond
	for _, p := range []semantics.Policy{semantics.AtLeastOnce(), semantics.AtMostOnce(), semantics.ExactlyOnce()} {
		start := time.Now()
		var r int
		err := c.Call(context.Background(), "Edge.Inc", 1, &r, WithSemantics(p))
		if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v: %v; want not executed, deadline exceeded", p.Kind(), err)
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
			t.Errorf("%v: gave up after %v, want the retry deadline (300ms)", p.Kind(), d)
		}
	}
}

// WithTimeout gives a call without a deadline a real one, which the
// interceptors see and the method's context ends at.
func TestWithTimeoutSetsTheCallDeadline(t *testing.T) {
	_, _, addr := serveEdge(t)
	var mu sync.Mutex
	var deadline time.Time
	var has bool
	spy := func(ctx context.Context, ci *CallInfo, next Handler) error {
		mu.Lock()
		deadline, has = ctx.Deadline()
		mu.Unlock()
		return next(ctx, ci)
	}
	c := dial(t, addr, WithClientInterceptor(spy))
	start := time.Now()
	var r int
	if err := c.Call(context.Background(), "Edge.Inc", 1, &r, WithTimeout(time.Hour), WithSemantics(semantics.AtMostOnce())); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !has || deadline.Sub(start) > time.Hour+time.Second || deadline.Sub(start) < time.Hour-time.Minute {
		t.Errorf("deadline %v after the start (set: %v), want an hour", deadline.Sub(start), has)
	}
}

// R8 with a server that never comes: the call ends at its timeout, not
// executed.
func TestRetryingCallToNoServerEndsAtItsTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := dial(t, addr, WithTimeout(200*time.Millisecond))
	var r int
	err = c.Call(context.Background(), "Edge.Inc", 1, &r, WithSemantics(semantics.AtLeastOnce()))
	if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want not executed, deadline exceeded", err)
	}
}

type Pair struct{ A, B any }

type PairInner struct{ X int }

func (e *Edge) TakePair(args Pair, reply *int) error {
	e.runs.Add(1)
	return nil
}

// PairReply answers a Pair whose first field is a registered type and
// whose second is args.N: 0 an unregistered type, else N bytes.
func (e *Edge) GivePair(args BigArgs, reply *Pair) error {
	e.runs.Add(1)
	reply.A = PairInner{1}
	if args.N == 0 {
		reply.B = unregistered{2}
	} else {
		reply.B = make([]byte, args.N)
	}
	return nil
}

// R1, R2: an interface value whose concrete type is new on the connection,
// next to one that cannot be encoded, fails alone; the connection stays in
// step for the calls after it.
func TestInterfaceArgsAndRepliesFailAlone(t *testing.T) {
	gob.Register(PairInner{})
	gob.Register([]byte(nil))
	_, e, addr := serveEdge(t, WithMaxMessageSize(64<<10))
	dials := atomic.Int64{}
	tr := NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}, WithMaxMessageSize(64<<10))
	c := NewClient(tr)
	defer c.Close()
	var r int
	if err := c.Call(ctxT(t), "Edge.TakePair", Pair{A: PairInner{1}, B: unregistered{2}}, &r); !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("unencodable interface args: %v", err)
	}
	if err := c.Call(ctxT(t), "Edge.TakePair", Pair{A: PairInner{3}, B: PairInner{4}}, &r); err != nil {
		t.Fatalf("good call after it: %v", err)
	}
	var p Pair
	if err := c.Call(ctxT(t), "Edge.GivePair", BigArgs{N: 0}, &p); !errors.Is(err, ErrReplyUnusable) {
		t.Fatalf("unencodable interface reply: %v", err)
	}
	if err := c.Call(ctxT(t), "Edge.GivePair", BigArgs{N: 128 << 10}, &p); !errors.Is(err, ErrReplyUnusable) || !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized interface reply: %v", err)
	}
	if err := c.Call(ctxT(t), "Edge.GivePair", BigArgs{N: 10}, &p); err != nil {
		t.Fatalf("good reply after them: %v", err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials: a bad value broke the connection", n)
	}
	if n := e.runs.Load(); n != 4 {
		t.Errorf("%d runs, want 4", n)
	}
}

// R17: a method interrupted by its server's Close may have had its effects:
// a duplicate, even on another server sharing the table, is answered "may
// have executed", never run again.
func TestInterruptedMethodIsNeverRunAgain(t *testing.T) {
	table := semantics.NewTable(nil)
	id, err := table.Open()
	if err != nil {
		t.Fatal(err)
	}
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: table.Epoch()}
	srv1 := NewServer(WithLogger(discardLogger()), WithTable(table))
	e1 := newEdge()
	srv1.Register(e1)
	done := make(chan error, 1)
	go func() {
		hh := h
		_, err := srv1.Handle(context.Background(), "Edge.Hold", &hh, valueDecoder{1})
		done <- err
	}()
	<-e1.started
	srv1.Close()
	if err := <-done; !errors.Is(err, ErrMaybeExecuted) {
		t.Fatalf("interrupted call: %v; want may have executed", err)
	}
	srv2 := NewServer(WithLogger(discardLogger()), WithTable(table))
	e2 := newEdge()
	srv2.Register(e2)
	defer srv2.Close()
	hh := h
	_, err = srv2.Handle(context.Background(), "Edge.Hold", &hh, valueDecoder{1})
	if !errors.Is(err, ErrMaybeExecuted) || e2.runs.Load() != 0 {
		t.Fatalf("duplicate after the interruption: %v, %d runs; want may have executed, no run", err, e2.runs.Load())
	}
}

// R8: a call without a deadline that waits for a window slot (every
// session full of slow calls) stops at its retry deadline too.
func TestWindowWaitEndsAtTheRetryDeadline(t *testing.T) {
	_, e, addr := serveEdge(t)
	c := dial(t, addr, WithSemantics(semantics.AtMostOnce(semantics.Window(1))))
	c.opts.retryTimeout = 300 * time.Millisecond
	held := make(chan error, maxRetired+1)
	for i := 0; i <= maxRetired; i++ {
		go func() {
			var r int
			held <- c.Call(ctxT(t), "Edge.Hold", 1, &r)
		}()
		<-e.started
	}
	start := time.Now()
	var r int
	err := c.Call(context.Background(), "Edge.Inc", 1, &r)
	if !errors.Is(err, ErrNotExecuted) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v; want not executed at the retry deadline", err, time.Since(start))
	}
	close(e.release)
	for i := 0; i <= maxRetired; i++ {
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	}
}

// R17: an answer the server recorded as the call's outcome without knowing
// whether it ran (the method was stopped, or its caller's deadline passed)
// is final: retrying would only get it again.
func TestRecordedNonAnswersAreFinal(t *testing.T) {
	for _, code := range []Code{CodeDeadlineExceeded, CodeInterrupted} {
		err := DecodeError(code, "stopped")
		if !errors.Is(err, ErrMaybeExecuted) || !semantics.IsPermanent(err) {
			t.Errorf("%v: %v; want may have executed, permanent", code, err)
		}
		if c, _ := EncodeError(err); c != code {
			t.Errorf("%v encodes back as %v", code, c)
		}
	}
	if !errors.Is(DecodeError(CodeDeadlineExceeded, "x"), context.DeadlineExceeded) {
		t.Error("CodeDeadlineExceeded does not wrap context.DeadlineExceeded")
	}
	if semantics.IsPermanent(DecodeError(CodeMaybeExecuted, "commit failed")) {
		t.Error("a failed durable commit must stay retryable: a restart can tell")
	}
}

// TestDecodedNonAnswersSayItOnce: a maybe-executed error sent by the server
// reads, once decoded, with its class and its cause once each, not
// "maybe executed: maybe executed: ...: context deadline exceeded: context
// deadline exceeded".
func TestDecodedNonAnswersSayItOnce(t *testing.T) {
	for _, sent := range []error{
		semantics.MaybeExecuted(fmt.Errorf("rpc: Bank.Slow: the caller's deadline passed while it ran: %w", context.DeadlineExceeded)),
		semantics.MaybeExecuted(fmt.Errorf("%w: Bank.Slow: stopped", errInterrupted)),
		semantics.MaybeExecuted(errors.New("commit failed")),
	} {
		code, msg := EncodeError(sent)
		got := DecodeError(code, msg)
		if got.Error() != sent.Error() {
			t.Errorf("%v: decoded as %q, want the server's text %q", code, got, sent)
		}
		if !errors.Is(got, ErrMaybeExecuted) {
			t.Errorf("%v: %v is not maybe executed", code, got)
		}
	}
	if got := DecodeError(CodeMaybeExecuted, "maybe executed: "); got.Error() != "maybe executed: maybe executed: " {
		t.Errorf("a text that is only the class: %q", got)
	}
}
