package gobcheck

import (
	"bytes"
	"errors"
	"net"
	"net/rpc"
	"sync"
	"testing"
	"time"
)

type Svc struct{}

func (Svc) Echo(args Holder, reply *Holder) error { *reply = args; return nil }

func (Svc) Meta(args RequestMeta, reply *map[string][]string) error {
	*reply = args.Metadata
	return nil
}

func (Svc) Fail(args Args, reply *Args) error { return errors.New("failed: " + args.Key) }

// recConn records what the server reads and writes.
type recConn struct {
	net.Conn
	mu      sync.Mutex
	in, out bytes.Buffer
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestNetRPCWire checks both directions of real net/rpc traffic.
func TestNetRPCWire(t *testing.T) {
	srv := rpc.NewServer()
	if err := srv.Register(Svc{}); err != nil {
		t.Fatal(err)
	}
	cli, sc := net.Pipe()
	rc := &recConn{Conn: sc}
	done := make(chan struct{})
	go func() { srv.ServeConn(rc); close(done) }()
	c := rpc.NewClient(cli)
	var h Holder
	for _, args := range []Holder{
		{}, {X: Inner{A: 1}}, {X: []int{1, 2}, Y: map[string]int{"a": 1}}, {X: Inner{A: 2}, N: 3},
		{X: GobEnc{v: []byte("g")}, Y: Named("n")}, {X: nil, Y: time.Time{}},
	} {
		if err := c.Call("Svc.Echo", args, &h); err != nil {
			t.Fatal(err)
		}
	}
	var m map[string][]string
	for range 3 {
		if err := c.Call("Svc.Meta", RequestMeta{ServiceMethod: "x", Metadata: map[string][]string{"k": {"v", "w"}}, Deadline: &Deadline{Unix: 1}}, &m); err != nil {
			t.Fatal(err)
		}
	}
	var a Args
	if err := c.Call("Svc.Fail", Args{Key: "k"}, &a); err == nil {
		t.Fatal("no error")
	}
	if err := c.Call("Svc.Nope", Args{Key: "k"}, &a); err == nil {
		t.Fatal("no error")
	}
	if err := c.Call("Svc.Echo", Holder{X: Inner{}}, &h); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-done
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := checkStream(Limits{}, rc.in.Bytes()); err != nil {
		t.Errorf("client to server: %v", err)
	}
	if err := checkStream(Limits{}, rc.out.Bytes()); err != nil {
		t.Errorf("server to client: %v", err)
	}
}
