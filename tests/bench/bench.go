// Package bench holds semrpc's benchmarks as plain functions, so that both
// `go test -bench` (bench_test.go) and the one-table report of `make bench`
// (tests/benchreport) run the same code. Every comparison runs plain
// net/rpc in the same process, on the same loopback, with the same service.
package bench

import (
	"context"
	"io"
	"log"
	"net"
	stdrpc "net/rpc"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Arith is the service every RPC benchmark calls.
type Arith int

// Args are the benchmark's arguments: small and flat, like most RPCs.
type Args struct{ A, B int }

// Add returns a + b.
func (t *Arith) Add(args Args, reply *int) error {
	*reply = args.A + args.B
	return nil
}

// caller makes one call; the benchmarks time it.
type caller func(ctx context.Context, args Args, reply *int) error

// StartNetRPC serves Arith with plain net/rpc on loopback and returns a
// caller through a stock net/rpc client, and a stop function.
func StartNetRPC(tb testing.TB) (caller, func()) {
	srv := stdrpc.NewServer()
	if err := srv.Register(new(Arith)); err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(conn)
			}()
		}
	}()
	c, err := stdrpc.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	call := func(_ context.Context, args Args, reply *int) error {
		return c.Call("Arith.Add", args, reply)
	}
	return call, func() {
		c.Close()
		l.Close()
		wg.Wait()
	}
}

// StartSemrpc serves Arith with semrpc on loopback and returns a caller
// through a semrpc client with the given policy, and a stop function.
func StartSemrpc(tb testing.TB, p semantics.Policy, serverOpts ...rpc.Option) (caller, func()) {
	srv := rpc.NewServer(append([]rpc.Option{rpc.WithLogger(log.New(io.Discard, "", 0))}, serverOpts...)...)
	if err := srv.Register(new(Arith)); err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	c, err := rpc.Dial(context.Background(), "tcp", l.Addr().String(), rpc.WithSemantics(p))
	if err != nil {
		tb.Fatal(err)
	}
	call := func(ctx context.Context, args Args, reply *int) error {
		return c.Call(ctx, "Arith.Add", args, reply)
	}
	return call, func() {
		c.Close()
		srv.Shutdown(context.Background())
		<-done
	}
}

// Sequential times one caller making calls one after another.
func Sequential(b *testing.B, call caller) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var reply int
		if err := call(ctx, Args{i, 1}, &reply); err != nil {
			b.Fatal(err)
		}
		if reply != i+1 {
			b.Fatalf("reply %d, want %d", reply, i+1)
		}
	}
}

// Parallel times g goroutines sharing one client.
func Parallel(b *testing.B, call caller, g int) {
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism((g + 1) / 2) // GOMAXPROCS is 2 here; RunParallel multiplies
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			var reply int
			if err := call(ctx, Args{i, 1}, &reply); err != nil {
				b.Error(err)
				return
			}
			if reply != i+1 {
				b.Errorf("reply %d, want %d", reply, i+1)
				return
			}
		}
	})
}

// StartExactlyOnce is StartSemrpc with exactly-once calls against a server
// whose completion records live in a bbolt file (fsync on, group commit).
func StartExactlyOnce(tb testing.TB) (caller, func()) {
	dir, err := os.MkdirTemp("", "semrpc-bench-*")
	if err != nil {
		tb.Fatal(err)
	}
	st, err := semantics.OpenBoltStore(filepath.Join(dir, "bench.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	call, stop := StartSemrpc(tb, semantics.ExactlyOnce(), rpc.WithDurableStore(st))
	return call, func() {
		stop()
		st.Close()
		os.RemoveAll(dir)
	}
}
