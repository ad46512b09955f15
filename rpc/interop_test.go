package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	stdrpc "net/rpc"
	"testing"
	"time"
)

// A stock net/rpc client calls our server.
func TestInteropStockClient(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c, err := stdrpc.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var sum int
	if err := c.Call("Arith.Add", Args{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("Add = %d, %v", sum, err)
	}
	var diff int
	if err := c.Call("Arith.Sub", Args{2, 3}, &diff); err != nil || diff != -1 {
		t.Fatalf("Sub (lab-style) = %d, %v", diff, err)
	}
	var q Quotient
	err = c.Call("Arith.Divide", Args{1, 0}, &q)
	if se, ok := err.(stdrpc.ServerError); !ok || string(se) != "divide by zero" {
		t.Fatalf("Divide: err = %#v, want net/rpc ServerError", err)
	}
	err = c.Call("Arith.Missing", Args{}, &q)
	if _, ok := err.(stdrpc.ServerError); !ok {
		t.Fatalf("missing method: err = %#v, want ServerError", err)
	}
	// Concurrent async calls on one stock client.
	calls := make([]*stdrpc.Call, 50)
	replies := make([]int, 50)
	for i := range calls {
		calls[i] = c.Go("Arith.Mul", &Args{i, 2}, &replies[i], nil)
	}
	for i, call := range calls {
		<-call.Done
		if call.Error != nil || replies[i] != 2*i {
			t.Fatalf("Mul %d = %d, %v", i, replies[i], call.Error)
		}
	}
}

// Our client calls a stock net/rpc server.
func TestInteropStockServer(t *testing.T) {
	c := dial(t, startStockServer(t))
	ctx := ctxT(t)
	var sum int
	if err := c.Call(ctx, "StdArith.Add", Args{20, 22}, &sum); err != nil || sum != 42 {
		t.Fatalf("Add = %d, %v", sum, err)
	}
	err := c.Call(ctx, "StdArith.Fail", Args{}, &sum)
	if !errors.Is(err, ErrApplication) || err.Error() != "nope" {
		t.Fatalf("Fail: err = %v, want application error 'nope'", err)
	}
	// At-most-once needs the server's table: a stock server gets a clear,
	// not-executed error rather than silent at-least-once behaviour.
	err = c.Call(ctx, "StdArith.Add", Args{1, 1}, &sum, WithSemantics(atMostOnce()))
	if err == nil || !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("at-most-once to stock server: err = %v, want not executed", err)
	}
	c.Close()
	_ = context.Background()
}

type StdArith int

func (t *StdArith) Add(args Args, reply *int) error {
	*reply = args.A + args.B
	return nil
}

func (t *StdArith) Fail(args Args, reply *int) error { return errors.New("nope") }

// A stock net/rpc client skips the shutdown notice: a call pending on it
// during Shutdown still gets its reply, and Shutdown does not wait for such
// a client to close its connection longer than its grace.
func TestInteropStockClientDuringShutdown(t *testing.T) {
	s, a, addr, _ := startServer(t)
	c, err := stdrpc.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var r int
	if err := c.Call("Arith.Add", Args{1, 2}, &r); err != nil {
		t.Fatal(err)
	}
	slow := c.Go("Arith.Slow", Args{7, 0}, new(int), nil)
	for a.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	start := time.Now()
	go func() { shut <- s.Shutdown(ctx) }()
	for !s.shutting.Load() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the notice goes out first
	close(a.block)
	<-slow.Done
	if slow.Error != nil || *slow.Reply.(*int) != 7 {
		t.Fatalf("pending call during Shutdown: %v, %v", *slow.Reply.(*int), slow.Error)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v with a stock client connected", d)
	}
}

// Coalesced requests and replies are plain net/rpc messages back to back:
// a stock net/rpc client with many concurrent calls reads our server's
// batched replies, and a stock net/rpc server reads our client's batched
// requests.
func TestCoalescedMessagesInteropWithStockNetRPC(t *testing.T) {
	const callers, calls = 32, 40
	run := func(t *testing.T, call func(i, j int) (int, error)) {
		errs := make(chan error, callers)
		for i := range callers {
			go func() {
				for j := range calls {
					got, err := call(i, j)
					if err == nil && got != i*1000+j {
						err = fmt.Errorf("caller %d call %d: got %d", i, j, got)
					}
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range callers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("stock client, our server", func(t *testing.T) {
		_, _, addr, _ := startServer(t)
		sc, err := stdrpc.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		run(t, func(i, j int) (int, error) {
			var got int
			err := sc.Call("Arith.Add", Args{i * 1000, j}, &got)
			return got, err
		})
	})
	t.Run("our client, stock server", func(t *testing.T) {
		srv := stdrpc.NewServer()
		if err := srv.RegisterName("Arith", new(StdArith)); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			conn, err := l.Accept()
			if err != nil {
				return
			}
			srv.ServeConn(conn)
		}()
		c := dial(t, l.Addr().String())
		ctx := ctxT(t)
		run(t, func(i, j int) (int, error) {
			var got int
			err := c.Call(ctx, "Arith.Add", Args{i * 1000, j}, &got)
			return got, err
		})
		c.Close()
		l.Close()
		<-done
	})
}
