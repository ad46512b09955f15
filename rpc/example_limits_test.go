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

// A server's limits are safe by default; each is an option. Here the
// connection cap is 1: a second client is refused, not run, and its
// retrying call goes through once the first client has gone.
func ExampleWithMaxConnections() {
	srv := rpc.NewServer(
		rpc.WithMaxConnections(1),
		rpc.WithIdleTimeout(time.Minute), // the defaults of the others stay
		rpc.WithLogger(log.New(discard{}, "", 0)),
	)
	if err := srv.Register(new(Counter)); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	first, _ := rpc.Dial(ctx, "tcp", l.Addr().String())
	var n int
	fmt.Println(first.Call(ctx, "Counter.Add", AddArgs{Delta: 1}, &n), n)

	second, _ := rpc.Dial(ctx, "tcp", l.Addr().String())
	defer second.Close()
	err = second.Call(ctx, "Counter.Add", AddArgs{Delta: 1}, &n)
	fmt.Println("refused, not run:", errors.Is(err, rpc.ErrNotExecuted))

	first.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = second.Call(ctx, "Counter.Add", AddArgs{Delta: 1}, &n, rpc.WithSemantics(semantics.AtLeastOnce()))
	fmt.Println(err, n)
	// Output:
	// <nil> 1
	// refused, not run: true
	// <nil> 2
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
