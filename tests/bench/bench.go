// Package bench holds semrpc's benchmarks as plain functions, so that both
// `go test -bench` (bench_test.go) and the one-table report of `make bench`
// (tests/benchreport) run the same code. Every comparison runs plain
// net/rpc in the same process, on the same loopback, with the same service.
package bench

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	stdrpc "net/rpc"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
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

// IO counts the reads and writes made on the connections of one
// benchmark, both sides together: each is at least one system call.
type IO struct {
	Reads  atomic.Int64 // Read calls on the connections
	Writes atomic.Int64 // Write calls on the connections
}

// countedConn counts its reads and writes in io.
type countedConn struct {
	net.Conn
	io *IO
}

func (c countedConn) Read(p []byte) (int, error) {
	c.io.Reads.Add(1)
	return c.Conn.Read(p)
}

func (c countedConn) Write(p []byte) (int, error) {
	c.io.Writes.Add(1)
	return c.Conn.Write(p)
}

// SyscallConn gives the socket below, so that a semrpc client can peek at
// it before it sends on a connection nobody reads (rpc/probe_unix.go), as
// it does on the *net.TCPConn it dials itself; each peek counts as a read.
func (c countedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return countedRawConn{rc, c.io}, nil
}

// countedRawConn counts each Read and Control (a peek, for the client) as
// a read.
type countedRawConn struct {
	syscall.RawConn
	io *IO
}

func (c countedRawConn) Read(f func(fd uintptr) bool) error {
	c.io.Reads.Add(1)
	return c.RawConn.Read(f)
}

func (c countedRawConn) Control(f func(fd uintptr)) error {
	c.io.Reads.Add(1)
	return c.RawConn.Control(f)
}

// countedListener counts the I/O of the connections it accepts.
type countedListener struct {
	net.Listener
	io *IO
}

func (l countedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{c, l.io}, nil
}

// mark is what reportIO measures from: the connection I/O counts and the
// process's CPU time when the timer was reset.
type mark struct {
	reads, writes int64
	cpu           time.Duration
	cpuOK         bool
}

// markIO takes a mark of io now.
func markIO(io *IO) mark {
	cpu, ok := processCPU()
	return mark{reads: io.Reads.Load(), writes: io.Writes.Load(), cpu: cpu, cpuOK: ok}
}

// reportIO reports reads and writes per call since m, and the CPU time
// per call of the whole process (client and server run in it, so both
// sides count): on a loaded machine it moves less than the time per call,
// which includes waiting for a processor.
func reportIO(b *testing.B, io *IO, m mark) {
	if b.N == 0 {
		return
	}
	b.ReportMetric(float64(io.Reads.Load()-m.reads)/float64(b.N), "reads/call")
	b.ReportMetric(float64(io.Writes.Load()-m.writes)/float64(b.N), "writes/call")
	if cpu, ok := processCPU(); ok && m.cpuOK {
		b.ReportMetric(float64(cpu-m.cpu)/1e3/float64(b.N), "cpu-µs/call")
	}
}

// Server is a benchmark server with clients: Callers[i] calls through the
// i-th client.
type Server struct {
	Callers []caller // one per client
	IO      *IO      // the reads and writes of every connection, both sides
	stop    func()
}

// Stop closes the clients and the server.
func (s *Server) Stop() { s.stop() }

// StartNetRPC serves Arith with plain net/rpc on loopback and returns a
// caller through a stock net/rpc client, and a stop function.
func StartNetRPC(tb testing.TB) (caller, func()) {
	s := StartNetRPCClients(tb, 1)
	return s.Callers[0], s.Stop
}

// StartNetRPCClients serves Arith with plain net/rpc on loopback, with n
// stock net/rpc clients, each on its own connection.
func StartNetRPCClients(tb testing.TB, n int) *Server {
	srv := stdrpc.NewServer()
	if err := srv.Register(new(Arith)); err != nil {
		tb.Fatal(err)
	}
	io := new(IO)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l := countedListener{ln, io}
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
	s := &Server{IO: io}
	var clients []*stdrpc.Client
	for range n {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			tb.Fatal(err)
		}
		c := stdrpc.NewClient(countedConn{nc, io})
		clients = append(clients, c)
		s.Callers = append(s.Callers, func(_ context.Context, args Args, reply *int) error {
			return c.Call("Arith.Add", args, reply)
		})
	}
	s.stop = func() {
		for _, c := range clients {
			c.Close()
		}
		l.Close()
		wg.Wait()
	}
	return s
}

// StartSemrpc serves Arith with semrpc on loopback and returns a caller
// through a semrpc client with the given policy, and a stop function.
func StartSemrpc(tb testing.TB, p semantics.Policy, serverOpts ...rpc.Option) (caller, func()) {
	s := StartSemrpcClients(tb, p, 1, serverOpts...)
	return s.Callers[0], s.Stop
}

// StartSemrpcClients serves Arith with semrpc on loopback, with n semrpc
// clients under policy p, each with its own connection.
func StartSemrpcClients(tb testing.TB, p semantics.Policy, n int, serverOpts ...rpc.Option) *Server {
	srv := rpc.NewServer(append([]rpc.Option{rpc.WithLogger(log.New(io.Discard, "", 0))}, serverOpts...)...)
	// Arith only computes its replies: with a durable store (the
	// exactly-once rows) it has nothing to write in the transaction.
	if err := srv.Register(new(Arith), rpc.OutsideTransaction()); err != nil {
		tb.Fatal(err)
	}
	counts := new(IO)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(countedListener{ln, counts})
	}()
	addr := ln.Addr().String()
	s := &Server{IO: counts}
	var clients []*rpc.Client
	for range n {
		tr := rpc.NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return countedConn{nc, counts}, nil
		})
		c := rpc.NewClient(tr, rpc.WithSemantics(p))
		clients = append(clients, c)
		s.Callers = append(s.Callers, func(ctx context.Context, args Args, reply *int) error {
			return c.Call(ctx, "Arith.Add", args, reply)
		})
	}
	s.stop = func() {
		for _, c := range clients {
			c.Close()
		}
		srv.Shutdown(context.Background())
		<-done
	}
	return s
}

// Sequential times one caller making calls one after another.
func Sequential(b *testing.B, s *Server) {
	call := s.Callers[0]
	ctx := context.Background()
	b.ReportAllocs()
	m := markIO(s.IO)
	defer func() { reportIO(b, s.IO, m) }()
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

// Parallel times g goroutines sharing one client, or, when s has a
// client per goroutine, each with its own.
func Parallel(b *testing.B, s *Server, g int) {
	ctx := context.Background()
	b.ReportAllocs()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((g + procs - 1) / procs) // RunParallel multiplies by GOMAXPROCS
	callers := make(chan caller, procs*((g+procs-1)/procs))
	for i := range cap(callers) {
		callers <- s.Callers[i%len(s.Callers)]
	}
	m := markIO(s.IO)
	defer func() { reportIO(b, s.IO, m) }()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		call := <-callers
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
	s := StartExactlyOnceClients(tb, 1)
	return s.Callers[0], s.Stop
}

// StartExactlyOnceClients is StartSemrpcClients with exactly-once calls
// against a server whose completion records live in a bbolt file.
func StartExactlyOnceClients(tb testing.TB, n int) *Server {
	dir, err := os.MkdirTemp("", "semrpc-bench-*")
	if err != nil {
		tb.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "bench.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	s := StartSemrpcClients(tb, semantics.ExactlyOnce(), n, rpc.WithDurableStore(st))
	stop := s.stop
	s.stop = func() {
		stop()
		st.Close()
		os.RemoveAll(dir)
	}
	return s
}
