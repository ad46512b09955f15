package kvservice_test

import (
	"context"
	"fmt"
	"net"

	"github.com/semrpc/semrpc/examples/kv/kvservice"
	"github.com/semrpc/semrpc/rpc"
)

func Example() {
	srv := rpc.NewServer()
	if err := srv.RegisterName(kvservice.ServiceName, kvservice.New()); err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	ctx := context.Background()
	rc, err := rpc.Dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer rc.Close()
	kv := kvservice.NewClient(rc)

	kv.Put(ctx, "greeting", "hello")
	old, _ := kv.Append(ctx, "greeting", ", world")
	v, _ := kv.Get(ctx, "greeting")
	fmt.Printf("old %q, now %q\n", old, v)
	// Output: old "hello", now "hello, world"
}
