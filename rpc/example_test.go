package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

type Counter struct{ n int }

type AddArgs struct{ Delta int }

func (c *Counter) Add(args AddArgs, reply *int) error {
	if args.Delta < 0 {
		return errors.New("negative delta")
	}
	c.n += args.Delta
	*reply = c.n
	return nil
}

// serve starts a server for Counter on a loopback port.
func serve() (addr string, stop func()) {
	srv := rpc.NewServer()
	if err := srv.Register(new(Counter)); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), func() { srv.Shutdown(context.Background()) }
}

func Example() {
	addr, stop := serve()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := rpc.Dial(ctx, "tcp", addr, rpc.WithSemantics(semantics.AtMostOnce()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var total int
	if err := client.Call(ctx, "Counter.Add", AddArgs{Delta: 2}, &total); err != nil {
		log.Fatal(err)
	}
	fmt.Println("total:", total)

	err = client.Call(ctx, "Counter.Add", AddArgs{Delta: -1}, &total)
	fmt.Println(err, errors.Is(err, rpc.ErrApplication))
	// Output:
	// total: 2
	// negative delta true
}

// Choosing semantics per call: reads at-least-once, writes at-most-once.
func ExampleWithSemantics() {
	addr, stop := serve()
	defer stop()
	ctx := context.Background()
	client, err := rpc.Dial(ctx, "tcp", addr, rpc.WithSemantics(semantics.AtLeastOnce()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var total int
	err = client.Call(ctx, "Counter.Add", AddArgs{Delta: 5}, &total,
		rpc.WithSemantics(semantics.AtMostOnce()))
	fmt.Println(total, err)
	// Output: 5 <nil>
}

// What a caller learns when no server answers: every attempt failed before
// sending, so the call definitely did not run.
func ExampleClient_Call_failureClasses() {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	client := rpc.NewClient(rpc.NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}, rpc.WithRedialBackoff(time.Millisecond, time.Millisecond)))
	defer client.Close()

	// A retrying policy waits for the server until the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var total int
	err := client.Call(ctx, "Counter.Add", AddArgs{Delta: 1}, &total, rpc.WithSemantics(semantics.AtLeastOnce()))
	fmt.Println("not executed:", errors.Is(err, rpc.ErrNotExecuted))
	fmt.Println("maybe executed:", errors.Is(err, rpc.ErrMaybeExecuted))
	fmt.Println("deadline:", errors.Is(err, context.DeadlineExceeded))
	// Output:
	// not executed: true
	// maybe executed: false
	// deadline: true
}

// A client over net.Pipe, served by ServeConn.
func ExampleNewStreamTransport() {
	srv := rpc.NewServer()
	srv.Register(new(Counter))
	t := rpc.NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		c1, c2 := net.Pipe()
		go srv.ServeConn(c2)
		return c1, nil
	})
	client := rpc.NewClient(t)
	defer srv.Close()
	defer client.Close()

	var total int
	err := client.Call(context.Background(), "Counter.Add", AddArgs{Delta: 3}, &total)
	fmt.Println(total, err)
	// Output: 3 <nil>
}
