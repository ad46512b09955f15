package rpc

import (
	"context"
	"net"
	stdrpc "net/rpc"
	"net/rpc/jsonrpc"
	"testing"
)

// BenchmarkServeGob measures sequential gob calls from a semrpc client to
// Serve with the JSON codec on (each connection's first byte read apart,
// its reads going through one more wrapper) and off.
func BenchmarkServeGob(b *testing.B) {
	for _, tt := range []struct {
		name string
		on   bool
	}{{"json-on", true}, {"json-off", false}} {
		b.Run(tt.name, func(b *testing.B) {
			_, _, addr, _ := startServer(b, WithJSONCodec(tt.on))
			c := dial(b, addr)
			ctx := context.Background()
			var sum int
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := c.Call(ctx, "Arith.Add", Args{1, 2}, &sum); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServeJSON measures sequential calls from a stock jsonrpc client
// to a semrpc server's Serve and to a stock net/rpc server serving
// jsonrpc.ServeConn, on the same loopback.
func BenchmarkServeJSON(b *testing.B) {
	b.Run("net/rpc", func(b *testing.B) {
		srv := stdrpc.NewServer()
		if err := srv.Register(new(Arith)); err != nil {
			b.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				nc, err := l.Accept()
				if err != nil {
					return
				}
				go srv.ServeCodec(jsonrpc.NewServerCodec(nc))
			}
		}()
		benchJSONClient(b, l.Addr().String())
	})
	b.Run("semrpc", func(b *testing.B) {
		_, _, addr, _ := startServer(b)
		benchJSONClient(b, addr)
	})
}

func benchJSONClient(b *testing.B, addr string) {
	c, err := jsonrpc.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var sum int
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.Call("Arith.Add", Args{1, 2}, &sum); err != nil {
			b.Fatal(err)
		}
	}
}
