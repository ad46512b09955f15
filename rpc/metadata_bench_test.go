package rpc_test

import (
	"context"
	"net"
	stdrpc "net/rpc"
	"sync"
	"testing"

	"github.com/semrpc/semrpc/rpc"
)

// MetaArith adds, and reads the caller's metadata when there is some.
type MetaArith int

type MetaArgs struct{ A, B int }

func (t *MetaArith) Add(args MetaArgs, reply *int) error {
	*reply = args.A + args.B
	return nil
}

func (t *MetaArith) AddMeta(ctx context.Context, args MetaArgs, reply *int) error {
	md, _ := rpc.FromIncomingContext(ctx)
	if md.First("tenant") == "" {
		*reply = -1
		return nil
	}
	*reply = args.A + args.B
	return nil
}

func (t *MetaArith) AddHeader(ctx context.Context, args MetaArgs, reply *int) error {
	*reply = args.A + args.B
	return rpc.SetHeader(ctx, rpc.Pairs("served-by", "bench"))
}

// BenchmarkMetadata times sequential calls on loopback: plain net/rpc,
// semrpc without metadata, with request metadata, with request and reply
// metadata, and with a no-op attempt interceptor, all in one process.
// Compare the ns/op of each to net-rpc's.
func BenchmarkMetadata(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := rpc.NewServer()
	srv.Register(new(MetaArith))
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	std := stdrpc.NewServer()
	std.Register(new(MetaArith))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := sl.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); std.ServeConn(conn) }()
		}
	}()
	defer func() { sl.Close(); wg.Wait() }()

	ctx := context.Background()
	b.Run("net-rpc", func(b *testing.B) {
		c, err := stdrpc.Dial("tcp", sl.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		var r int
		for b.Loop() {
			if err := c.Call("MetaArith.Add", MetaArgs{1, 2}, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	semrpc := func(name, method string, ctx context.Context, copts []rpc.Option, opts ...rpc.Option) {
		b.Run(name, func(b *testing.B) {
			c, err := rpc.Dial(ctx, "tcp", l.Addr().String(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var r int
			for b.Loop() {
				if err := c.Call(ctx, method, MetaArgs{1, 2}, &r, copts...); err != nil || r != 3 {
					b.Fatal(r, err)
				}
			}
		})
	}
	semrpc("semrpc", "MetaArith.Add", ctx, nil)
	mdCtx := rpc.AppendToOutgoingContext(ctx, "tenant", "acme", "request-id", "0123456789")
	semrpc("semrpc-metadata", "MetaArith.AddMeta", mdCtx, nil)
	var header rpc.Metadata
	semrpc("semrpc-metadata-header", "MetaArith.AddHeader", mdCtx, []rpc.Option{rpc.WithHeader(&header)})
	semrpc("semrpc-attempt-interceptor", "MetaArith.Add", ctx, nil,
		rpc.WithAttemptInterceptor(func(ctx context.Context, a *rpc.AttemptInfo, next rpc.AttemptHandler) error {
			return next(ctx, a)
		}))
}
