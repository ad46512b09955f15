package rpc

import (
	"context"
	"net"
	stdrpc "net/rpc"
	"testing"
)

// BenchmarkClusterSequential compares one caller's sequential calls of
// Arith.Add over TCP loopback: plain net/rpc (client and server), Dial, and
// DialCluster over one and three servers (NoRetry), for the cost of the
// balancer. Read the ratios to net/rpc, measured in the same run.
func BenchmarkClusterSequential(b *testing.B) {
	ctx := context.Background()
	call := func(b *testing.B, c *Client) {
		b.Helper()
		b.ReportAllocs()
		var reply int
		for b.Loop() {
			if err := c.Call(ctx, "Arith.Add", Args{A: 1, B: 2}, &reply); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	}
	b.Run("net-rpc", func(b *testing.B) {
		srv := stdrpc.NewServer()
		if err := srv.Register(&Arith{block: make(chan struct{})}); err != nil {
			b.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { // Accept would log the listener's closing
			defer close(done)
			nc, err := l.Accept()
			if err != nil {
				return
			}
			srv.ServeConn(nc) // until the client closes
		}()
		c, err := stdrpc.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		var reply int
		for b.Loop() {
			if err := c.Call("Arith.Add", Args{A: 1, B: 2}, &reply); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		c.Close()
		l.Close()
		<-done
	})
	b.Run("Dial", func(b *testing.B) {
		_, _, addr, _ := startServer(b)
		c, err := Dial(ctx, "tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		call(b, c)
	})
	for _, n := range []int{1, 3} {
		name := map[int]string{1: "DialCluster-1-server", 3: "DialCluster-3-servers"}[n]
		b.Run(name, func(b *testing.B) {
			var addrs []string
			for range n {
				_, _, addr, _ := startServer(b)
				addrs = append(addrs, addr)
			}
			c, err := DialCluster(ctx, "tcp", addrs)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			call(b, c)
		})
	}
}
