package rpc

import (
	"context"
	"errors"
	"net"
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
}

func (n *Node) Name(ctx context.Context, _ int, reply *string) error {
	n.calls.Add(1)
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
	done chan error
}

func startClusterNode(t *testing.T, name string) *clusterNode {
	n := &clusterNode{t: t, svc: &Node{name: name, entered: make(chan struct{}, 16), release: make(chan struct{})}, addr: "127.0.0.1:0"}
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
	n.srv = NewServer(WithLogger(discardLogger()))
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

func TestDialClusterAtMostOnceCallThatMayHaveRunIsNeverSentToAnotherServer(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "a"), startClusterNode(t, "b")}
	c := dialCluster(t, nodes, WithSemantics(semantics.AtMostOnce()))
	home := sessionNode(t, c, nodes)
	other := nodes[0]
	if other == home {
		other = nodes[1]
	}
	before := other.svc.calls.Load()

	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	var who string
	held := c.Go(ctx, "Node.Hold", 0, &who)
	<-home.svc.entered
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
