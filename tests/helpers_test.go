package tests

import (
	"context"
	"io"
	"log"
	"net"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// seed returns the test's seed (SEMRPC_SEED or the clock) and arranges for
// it to be printed if the test fails.
func seed(t testing.TB) int64 {
	t.Helper()
	s := time.Now().UnixNano()
	if env := os.Getenv("SEMRPC_SEED"); env != "" {
		v, err := strconv.ParseInt(env, 10, 64)
		if err != nil {
			t.Fatalf("SEMRPC_SEED=%q: %v", env, err)
		}
		s = v
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with SEMRPC_SEED=%d", s)
		}
	})
	return s
}

// soak is the factor by which long runs are longer (SEMRPC_SOAK, default 1).
func soak() int {
	if n, err := strconv.Atoi(os.Getenv("SEMRPC_SOAK")); err == nil && n > 1 {
		return n
	}
	return 1
}

func quiet() *log.Logger { return log.New(io.Discard, "", 0) }

// Counter counts executions per call id: the ground truth of how often each
// call ran.
type Counter struct {
	mu   sync.Mutex // protects runs
	runs map[int64]int
}

func NewCounter() *Counter { return &Counter{runs: make(map[int64]int)} }

type IncrArgs struct {
	ID int64
}

type IncrReply struct {
	Runs int // how many times this id has run, this one included
}

func (c *Counter) Incr(args IncrArgs, reply *IncrReply) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[args.ID]++
	reply.Runs = c.runs[args.ID]
	return nil
}

func (c *Counter) Runs(id int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

// serveTCP serves srv on a loopback port until the test ends.
func serveTCP(t testing.TB, srv *rpc.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return l.Addr().String()
}

// direct is an in-process Transport that hands requests straight to a
// server's core, copying arguments and replies by value (no sharing beyond
// what a real transport would do for flat structs).
type direct struct{ srv *rpc.Server }

type valueArgs struct{ v any }

func (a valueArgs) DecodeArgs(dst any) error {
	reflect.ValueOf(dst).Elem().Set(reflect.Indirect(reflect.ValueOf(a.v)))
	return nil
}

func (d direct) RoundTrip(ctx context.Context, req *rpc.Request, reply any) error {
	var h *semantics.Header
	if req.Header != nil {
		hh := *req.Header
		h = &hh
	}
	r, err := d.srv.Handle(ctx, req.ServiceMethod, h, valueArgs{req.Args})
	if err != nil {
		return rpc.DecodeError(rpc.EncodeError(err))
	}
	reflect.ValueOf(reply).Elem().Set(reflect.ValueOf(r).Elem())
	return nil
}

func (direct) Close() error { return nil }
