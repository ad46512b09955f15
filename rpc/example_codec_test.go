package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/rpc/jsonrpc"

	"github.com/semrpc/semrpc/rpc"
)

// A stock net/rpc/jsonrpc client calls a semrpc server through ServeCodec.
func ExampleServer_ServeCodec() {
	srv := rpc.NewServer()
	if err := srv.Register(new(Counter)); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	clientSide, serverSide := net.Pipe()
	go srv.ServeCodec(jsonrpc.NewServerCodec(serverSide))

	c := jsonrpc.NewClient(clientSide)
	defer c.Close()
	var n int
	if err := c.Call("Counter.Add", AddArgs{Delta: 4}, &n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
	// Output: 4
}

// Serve answers JSON-RPC on the same port as gob: a connection that opens
// as a JSON object is JSON.
func ExampleWithJSONCodec() {
	addr, stop := serve()
	defer stop()
	c, err := jsonrpc.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var n int
	if err := c.Call("Counter.Add", AddArgs{Delta: 2}, &n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
	// Output: 2
}

// HandleHTTP serves RPC and a debug page on http.DefaultServeMux, as
// net/rpc's does; DialHTTPPath calls through HTTP CONNECT.
func ExampleServer_HandleHTTP() {
	srv := rpc.NewServer()
	if err := srv.Register(new(Counter)); err != nil {
		log.Fatal(err)
	}
	srv.HandleHTTP("/example/rpc", "/example/debug")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(l, nil)
	defer l.Close()
	defer srv.Close()

	ctx := context.Background()
	c, err := rpc.DialHTTPPath(ctx, "tcp", l.Addr().String(), "/example/rpc")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var n int
	if err := c.Call(ctx, "Counter.Add", AddArgs{Delta: 3}, &n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
	// Output: 3
}

// DialHTTP reaches a server mounted at DefaultRPCPath on any mux.
func ExampleDialHTTP() {
	srv := rpc.NewServer()
	if err := srv.Register(new(Counter)); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(rpc.DefaultRPCPath, srv)
	mux.Handle(rpc.DefaultDebugPath, srv.DebugHandler())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(l, mux)
	defer l.Close()
	defer srv.Close()

	ctx := context.Background()
	c, err := rpc.DialHTTP(ctx, "tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var n int
	if err := c.Call(ctx, "Counter.Add", AddArgs{Delta: 5}, &n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
	// Output: 5
}

func ExampleClient_Health() {
	addr, stop := serve()
	defer stop()
	c, err := rpc.Dial(context.Background(), "tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	h, err := c.Health(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.Status, h.Services)
	// Output: SERVING 1
}

func ExampleClient_Methods() {
	addr, stop := serve()
	defer stop()
	c, err := rpc.Dial(context.Background(), "tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	r, err := c.Methods(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, svc := range r.Services {
		for _, m := range svc.Methods {
			fmt.Println(m.Name, m.Args, m.Reply, m.ArgsJSON)
		}
	}
	// Output: Counter.Add rpc_test.AddArgs *int {"Delta":0}
}

// With introspection off, the built-in methods are unknown.
func ExampleWithIntrospection() {
	srv := rpc.NewServer(rpc.WithIntrospection(false))
	if err := srv.Register(new(Counter)); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	c, err := rpc.Dial(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.Health(context.Background())
	fmt.Println(errors.Is(err, rpc.ErrUnknownMethod))
	// Output: true
}
