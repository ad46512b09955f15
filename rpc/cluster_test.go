package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Node is a cluster test service that says which server ran the call.
type Node struct {
	name    string
	calls   atomic.Int64
	entered chan struct{} // Hold sends on it when it starts
	release chan struct{} // Hold returns when it is closed
	runs    *sync.Map     // id -> *atomic.Int64, for Once
}

func (n *Node) Name(ctx context.Context, _ int, reply *string) error {
	n.calls.Add(1)
	*reply = n.name
	return nil
}

// Once counts its runs per id in runs, shared by the servers of a test.
func (n *Node) Once(ctx context.Context, id int, reply *string) error {
	n.calls.Add(1)
	v, _ := n.runs.LoadOrStore(id, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	*reply = n.name
	return nil
}

func (n *Node) Hold(ctx context.Context, _ int, reply *string) error {
	n.calls.Add(1)
	n.entered <- struct{}{}
	select {
	case <-n.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	*reply = n.name
	return nil
}

// clusterNode is one server of a test cluster, which the test can stop
// (its port then refuses connections) and start again on the same address.
type clusterNode struct {
	t    *testing.T
	svc  *Node
	addr string
	srv  *Server
	opts []Option // the server's, beside its logger
	done chan error
}

func startClusterNode(t *testing.T, name string, opts ...Option) *clusterNode {
	n := &clusterNode{t: t, svc: &Node{name: name, entered: make(chan struct{}, 16), release: make(chan struct{})}, addr: "127.0.0.1:0", opts: opts}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *clusterNode) start() {
	n.t.Helper()
	l, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatal(err)
	}
	n.addr = l.Addr().String()
	n.srv = NewServer(append([]Option{WithLogger(discardLogger())}, n.opts...)...)
	if err := n.srv.RegisterName("Node", n.svc); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan error, 1)
	go func() { n.done <- n.srv.Serve(l) }()
}

// stop closes the server at once: its connections drop, its port refuses.
func (n *clusterNode) stop() {
	if n.srv == nil {
		return
	}
	n.srv.Close()
	<-n.done
	n.srv = nil
}

func dialCluster(t *testing.T, nodes []*clusterNode, opts ...Option) *Client {
	t.Helper()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	opts = append([]Option{WithRedialBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)
	c, err := DialCluster(ctxT(t), "tcp", addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialClusterSequentialCallsSpreadEvenly(t *testing.T) {
	tests := []struct {
		name string
		b    Balancer
	}{
		{"least-outstanding", LeastOutstanding},
		{"round-robin", RoundRobin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b"), startClusterNode(t, "c")}
			c := dialCluster(t, nodes, WithBalancer(tt.b))
			for i := range 30 {
				var who string
				if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range nodes {
				if got := n.svc.calls.Load(); got != 10 {
					t.Errorf("server %s ran %d of 30 sequential calls, want 10", n.svc.name, got)
				}
			}
		})
	}
}

func TestDialClusterCallsSpreadEvenlyOverTheServersInRotation(t *testing.T) {
	// A server out of rotation must not hand its turns to the server
	// after it: with b down, a and c get half of the calls each.
	for _, b := range []Balancer{LeastOutstanding, RoundRobin} {
		t.Run(b.String(), func(t *testing.T) {
			nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b"), startClusterNode(t, "c")}
			nodes[1].stop()
			// Eager: b is found down at dial; an hour's backoff keeps it out.
			c := dialCluster(t, nodes, WithBalancer(b), WithEagerDial(), WithRedialBackoff(time.Hour, time.Hour))
			for i := range 20 {
				var who string
				if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range []*clusterNode{nodes[0], nodes[2]} {
				if got := n.svc.calls.Load(); got != 10 {
					t.Errorf("server %s ran %d of 20 sequential calls with b out of rotation, want 10", n.svc.name, got)
				}
			}
		})
	}
}

func TestDialClusterLeastOutstandingAvoidsBusyServer(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b")}
	c := dialCluster(t, nodes)
	var held string
	slow := c.Go(ctxT(t), "Node.Hold", 0, &held)
	var busy, idle *clusterNode
	select {
	case <-nodes[0].svc.entered:
		busy, idle = nodes[0], nodes[1]
	case <-nodes[1].svc.entered:
		busy, idle = nodes[1], nodes[0]
	case <-ctxT(t).Done():
		t.Fatal("the held call never started")
	}
	for i := range 6 {
		var who string
		if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
			t.Fatal(err)
		}
		if who != idle.svc.name {
			t.Errorf("call %d ran on %s, which has a call outstanding; want %s", i, who, idle.svc.name)
		}
	}
	close(busy.svc.release)
	<-slow.Done
	if slow.Err != nil || held != busy.svc.name {
		t.Fatalf("held call: %q %v", held, slow.Err)
	}
}

func TestDialClusterServerDownAtDialDoesNotFailIt(t *testing.T) {
	up := startClusterNode(t, "up")
	down := startClusterNode(t, "down")
	down.stop()
	for _, eager := range []bool{false, true} {
		opts := []Option{}
		if eager {
			opts = append(opts, WithEagerDial())
		}
		c := dialCluster(t, []*clusterNode{down, up}, opts...)
		// NoRetry calls too: an attempt refused by the down server was not
		// sent, so it moves to the other.
		for i := range 6 {
			var who string
			if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
				t.Fatalf("eager=%v call %d: %v", eager, i, err)
			}
			if who != "up" {
				t.Fatalf("eager=%v call %d ran on %q", eager, i, who)
			}
		}
	}
}

func TestDialClusterFailsWhenNoServerIsUp(t *testing.T) {
	a, b := startClusterNode(t, "a"), startClusterNode(t, "b")
	a.stop()
	b.stop()
	_, err := DialCluster(ctxT(t), "tcp", []string{a.addr, b.addr}, WithEagerDial())
	if !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("eager DialCluster with every server down: %v, want ErrNotExecuted", err)
	}
	c := dialCluster(t, []*clusterNode{a, b})
	var who string
	err = c.Call(ctxT(t), "Node.Name", 0, &who)
	if !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("NoRetry call with every server down: %v, want ErrNotExecuted", err)
	}
}

func TestDialClusterRefusesBadArguments(t *testing.T) {
	tests := []struct {
		name  string
		addrs []string
		opts  []Option
	}{
		{"no address", nil, nil},
		{"address listed twice", []string{"127.0.0.1:1", "127.0.0.1:1"}, nil},
		{"malformed address", []string{"127.0.0.1"}, nil},
		{"unknown balancer", []string{"127.0.0.1:1"}, []Option{WithBalancer(Balancer(7))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DialCluster(ctxT(t), "tcp", tt.addrs, tt.opts...)
			if err == nil {
				c.Close()
				t.Fatal("DialCluster succeeded")
			}
			if !errors.Is(err, ErrNotExecuted) || !semantics.IsPermanent(err) {
				t.Fatalf("err %v: want a permanent not-executed error", err)
			}
		})
	}
}

func TestDialClusterRefusingServerIsProbedBackIntoRotation(t *testing.T) {
	a, b := startClusterNode(t, "a"), startClusterNode(t, "b")
	c := dialCluster(t, []*clusterNode{a, b})
	call := func() string {
		t.Helper()
		var who string
		if err := c.Call(ctxT(t), "Node.Name", 0, &who); err != nil {
			t.Fatal(err)
		}
		return who
	}
	b.stop()
	for range 10 {
		if who := call(); who != "a" {
			t.Fatalf("call ran on %q while b refuses connections", who)
		}
	}
	b.start() // same address
	ctx := ctxT(t)
	for call() != "b" {
		if ctx.Err() != nil {
			t.Fatal("b never came back into rotation")
		}
		time.Sleep(time.Millisecond) // b's probe backoff is 1-5 ms
	}
}

// sessionNode returns the node whose server opened the client's session,
// found with one at-most-once call.
func sessionNode(t *testing.T, c *Client, nodes []*clusterNode) *clusterNode {
	t.Helper()
	var who string
	if err := c.Call(ctxT(t), "Node.Name", 0, &who, WithSemantics(semantics.AtMostOnce())); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.svc.name == who {
			return n
		}
	}
	t.Fatalf("call ran on unknown server %q", who)
	return nil
}

// heldOn starts c's call of Node.Hold and returns it with the index of the
// node it entered.
func heldOn(t *testing.T, ctx context.Context, c *Client, nodes []*clusterNode, who *string) (*AsyncCall, int) {
	t.Helper()
	held := c.Go(ctx, "Node.Hold", 0, who)
	cases := make([]chan struct{}, len(nodes))
	for i, n := range nodes {
		cases[i] = make(chan struct{})
		go func() {
			select {
			case <-n.svc.entered:
				close(cases[i])
			case <-held.Done:
			}
		}()
	}
	wait := ctxT(t)
	for {
		for i := range nodes {
			select {
			case <-cases[i]:
				return held, i
			default:
			}
		}
		select {
		case <-held.Done:
			t.Fatalf("the held call ended before it started anywhere: %v", held.Err)
		case <-wait.Done():
			t.Fatal("the held call never started")
		case <-time.After(time.Millisecond):
		}
	}
}

func TestDialClusterAtMostOnceCallThatMayHaveRunIsNeverSentToAnotherServer(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b")}
	c := dialCluster(t, nodes, WithSemantics(semantics.AtMostOnce()))

	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	var who string
	held, h := heldOn(t, ctx, c, nodes, &who)
	home, other := nodes[h], nodes[1-h]
	before := other.svc.calls.Load()
	home.stop() // the call ran, its reply is lost, and home refuses connections
	<-held.Done
	if !errors.Is(held.Err, ErrMaybeExecuted) {
		t.Fatalf("at-most-once call whose server died while it ran: %v, want ErrMaybeExecuted", held.Err)
	}
	if got := other.svc.calls.Load() - before; got != 0 {
		t.Fatalf("the other server ran %d calls; the call may have run on its own server and must not be resent", got)
	}
}

func TestDialClusterAtMostOnceCallNeverSentMovesToAServerThatIsUp(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b")}
	c := dialCluster(t, nodes, WithSemantics(semantics.AtMostOnce()))
	home := sessionNode(t, c, nodes)
	home.stop()
	waitDisconnected(t, c, home)
	for i := range 4 {
		var who string
		if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
			t.Fatalf("call %d after its session's server stopped: %v", i, err)
		}
		if who == home.svc.name {
			t.Fatalf("call %d ran on the stopped server", i)
		}
	}
	if st := c.Stats(); st.SessionResets != 1 || st.SessionsOpened != 2 {
		t.Fatalf("sessions opened %d, reset %d; want 2 and 1", st.SessionsOpened, st.SessionResets)
	}
}

// waitDisconnected waits until c's transport to n has seen its connection
// close, so that the next call's attempt cannot be written into the dead
// connection (which would make it may-have-executed).
func waitDisconnected(t *testing.T, c *Client, n *clusterNode) {
	t.Helper()
	ctx := ctxT(t)
	for _, m := range c.t.(*clusterTransport).members {
		if m.addr != n.addr {
			continue
		}
		for {
			m.t.mu.Lock()
			cur := m.t.cur
			m.t.mu.Unlock()
			if cur == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatal("the client never saw its connection close")
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatalf("no server %s in the cluster", n.addr)
}

func TestDialClusterCloseEndsEachSessionOnItsOwnServer(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b")}
	c := dialCluster(t, nodes, WithSemantics(semantics.AtMostOnce(semantics.Window(1))))
	var held string
	slow := c.Go(ctxT(t), "Node.Hold", 0, &held)
	var first, second *clusterNode
	select {
	case <-nodes[0].svc.entered:
		first, second = nodes[0], nodes[1]
	case <-nodes[1].svc.entered:
		first, second = nodes[1], nodes[0]
	case <-ctxT(t).Done():
		t.Fatal("the held call never started")
	}
	// The held call fills its session's window: the next call opens a
	// second session, on the server with no call outstanding.
	var who string
	if err := c.Call(ctxT(t), "Node.Name", 0, &who); err != nil || who != second.svc.name {
		t.Fatalf("second call: %q %v; want it on %s", who, err, second.svc.name)
	}
	close(first.svc.release)
	<-slow.Done
	if slow.Err != nil {
		t.Fatal(slow.Err)
	}
	c.Close()
	for _, n := range nodes {
		if st := n.srv.Table().Stats(); st.Opened != 1 || st.Closed != 1 || st.Sessions != 0 {
			t.Errorf("server %s after the client closed: opened %d, closed %d, live %d; want 1, 1, 0",
				n.svc.name, st.Opened, st.Closed, st.Sessions)
		}
	}
}

// gateProxy forwards connections to target; the test can make it refuse
// connections (cutting those it carries) and accept them again on the same
// address, while the server behind it keeps running.
type gateProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex // protects following
	l     net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func startGateProxy(t *testing.T, target string) *gateProxy {
	p := &gateProxy{t: t, target: target, addr: "127.0.0.1:0"}
	p.open()
	t.Cleanup(func() {
		p.refuse()
		p.wg.Wait()
	})
	return p
}

func (p *gateProxy) open() {
	p.t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.addr = l.Addr().String()
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			for _, dir := range [][2]net.Conn{{c, u}, {u, c}} {
				go func() {
					defer p.wg.Done()
					io.Copy(dir[0], dir[1])
					dir[0].Close()
					dir[1].Close()
				}()
			}
		}
	}()
}

// refuse closes the listener and every connection carried.
func (p *gateProxy) refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestDialClusterAtMostOnceCallThatMayHaveRunWaitsForItsServer(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b")}
	gates := []*gateProxy{startGateProxy(t, nodes[0].addr), startGateProxy(t, nodes[1].addr)}
	c := dialCluster(t, []*clusterNode{{addr: gates[0].addr}, {addr: gates[1].addr}}, WithSemantics(semantics.AtMostOnce()))

	var who string
	held, h := heldOn(t, ctxT(t), c, nodes, &who)
	home, other := nodes[h], nodes[1-h]
	gates[h].refuse() // the call may have run; its server is out of reach
	ctx := ctxT(t)
	for c.Servers()[h].InRotation { // the retry found home refusing
		if ctx.Err() != nil {
			t.Fatal("the client never found home refusing")
		}
		time.Sleep(time.Millisecond)
	}
	close(home.svc.release) // the call completes on home; its reply is lost
	gates[h].open()
	<-held.Done
	if held.Err != nil || who != home.svc.name {
		t.Fatalf("call that may have run: %q %v; want %s's recorded reply once it is back", who, held.Err, home.svc.name)
	}
	if n := home.svc.calls.Load(); n != 1 {
		t.Fatalf("%s ran the call %d times, want once: the retry must be answered from its table", home.svc.name, n)
	}
	if n := other.svc.calls.Load(); n != 0 {
		t.Fatalf("%s, in rotation throughout, ran %d calls while the call's server was out of reach", other.svc.name, n)
	}
}

// TestDialClusterAtMostOnceUnderConcurrentCallsAndAServerCrash: many
// callers, one server stopped and restarted (losing its table) while calls
// run. No call runs twice on any server; a call that returned nil ran
// exactly once; a call that failed says whether it may have run, and one
// that did not run did not.
func TestDialClusterAtMostOnceUnderConcurrentCallsAndAServerCrash(t *testing.T) {
	runs := new(sync.Map)
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b"), startClusterNode(t, "c")}
	for _, n := range nodes {
		n.svc.runs = runs
	}
	const callers, perCaller = 8, 25
	type result struct {
		id  int
		err error
	}
	results := make(chan result, callers*perCaller)
	var wg sync.WaitGroup
	for g := range callers {
		// Each caller its own client, so that sessions land on every server.
		c := dialCluster(t, nodes, WithSemantics(semantics.AtMostOnce(semantics.Backoff(time.Millisecond, 5*time.Millisecond))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perCaller {
				id := g*perCaller + i
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var who string
				err := c.Call(ctx, "Node.Once", id, &who)
				cancel()
				results <- result{id, err}
			}
		}()
	}
	// Crash b once calls are flowing, and bring it back with an empty table.
	wait := ctxT(t)
	for nodes[0].svc.calls.Load()+nodes[1].svc.calls.Load()+nodes[2].svc.calls.Load() < callers*perCaller/4 {
		if wait.Err() != nil {
			t.Fatal("calls never flowed")
		}
		time.Sleep(time.Millisecond)
	}
	nodes[1].stop()
	nodes[1].start()
	wg.Wait()
	close(results)

	var ok, maybe int
	for r := range results {
		n := int64(0)
		if v, found := runs.Load(r.id); found {
			n = v.(*atomic.Int64).Load()
		}
		switch {
		case n > 1:
			t.Errorf("call %d ran %d times", r.id, n)
		case r.err == nil && n != 1:
			t.Errorf("call %d succeeded but ran %d times", r.id, n)
		case r.err == nil:
			ok++
		case errors.Is(r.err, ErrNotExecuted) && n != 0:
			t.Errorf("call %d reported not executed but ran: %v", r.id, r.err)
		case errors.Is(r.err, ErrMaybeExecuted):
			maybe++
		case !errors.Is(r.err, ErrNotExecuted):
			t.Errorf("call %d: error without a verdict: %v", r.id, r.err)
		}
	}
	t.Logf("%d calls succeeded, %d may have run (cut by the crash)", ok, maybe)
	if ok < callers*perCaller/2 {
		t.Errorf("only %d of %d calls succeeded with two servers up throughout", ok, callers*perCaller)
	}
}

func TestDialClusterOverStockNetRPCServers(t *testing.T) {
	addrs := []string{startStockServer(t), startStockServer(t)}
	c, err := DialCluster(ctxT(t), "tcp", addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 4 {
		var sum int
		if err := c.Call(ctxT(t), "StdArith.Add", Args{i, 1}, &sum, WithSemantics(semantics.AtLeastOnce())); err != nil || sum != i+1 {
			t.Fatalf("call %d: %d %v", i, sum, err)
		}
	}
	var sum int
	err = c.Call(ctxT(t), "StdArith.Add", Args{1, 1}, &sum, WithSemantics(semantics.AtMostOnce()))
	if !errors.Is(err, ErrNotExecuted) || !semantics.IsPermanent(err) {
		t.Fatalf("at-most-once call to stock servers: %v, want not executed, permanent", err)
	}
}

func TestDialClusterUnencodableArgumentsFailAloneNotExecuted(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b")}
	c := dialCluster(t, nodes, WithSemantics(semantics.AtLeastOnce()))
	var who string
	err := c.Call(ctxT(t), "Node.Name", func() {}, &who)
	if !errors.Is(err, ErrNotExecuted) || !semantics.IsPermanent(err) {
		t.Fatalf("call with a func argument: %v, want not executed, permanent", err)
	}
	for i := range 2 {
		if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
			t.Fatalf("next call %d: %v", i, err)
		}
	}
}

func TestDialClusterCloseEndsCallsWaitingForAServer(t *testing.T) {
	a := startClusterNode(t, "a")
	a.stop()
	addrs := []string{a.addr}
	c, err := DialCluster(ctxT(t), "tcp", addrs, WithRedialBackoff(time.Hour, time.Hour), WithSemantics(semantics.AtLeastOnce()))
	if err != nil {
		t.Fatal(err)
	}
	var who string
	// The first attempt finds a refusing; the retries wait for its probe,
	// an hour away, within the call's context.
	call := c.Go(ctxT(t), "Node.Name", 0, &who)
	wait := ctxT(t)
	for c.Servers()[0].InRotation {
		if wait.Err() != nil {
			t.Fatal("the call never found its server refusing")
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	select {
	case <-call.Done:
	case <-ctxT(t).Done():
		t.Fatal("Close left a call waiting for a server")
	}
	if !errors.Is(call.Err, ErrNotExecuted) {
		t.Fatalf("call ended by Close: %v, want not executed", call.Err)
	}
}

func TestClientServersReportsRotation(t *testing.T) {
	a, b := startClusterNode(t, "a"), startClusterNode(t, "b")
	b.stop()
	c := dialCluster(t, []*clusterNode{a, b}, WithRedialBackoff(time.Hour, time.Hour))
	for i := range 4 {
		var who string
		if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil {
			t.Fatal(err)
		}
	}
	st := c.Servers()
	if len(st) != 2 || st[0].Addr != a.addr || st[1].Addr != b.addr {
		t.Fatalf("Servers() = %+v, want a and b in order", st)
	}
	if !st[0].InRotation || st[0].LastError != nil || !st[0].NextProbe.IsZero() {
		t.Errorf("a: %+v, want in rotation", st[0])
	}
	if st[1].InRotation || st[1].LastError == nil || !st[1].NextProbe.After(time.Now()) {
		t.Errorf("b: %+v, want out of rotation with its dial error and a probe ahead", st[1])
	}
	if got := dial(t, a.addr).Servers(); got != nil {
		t.Errorf("Servers() of a Dial client = %+v, want nil", got)
	}
}
