package rpc

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	stdrpc "net/rpc"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Arith is the test service, in both handler styles.
type Arith struct {
	calls atomic.Int64
	block chan struct{} // Slow waits on it
}

type Args struct{ A, B int }
type Quotient struct{ Quo, Rem int }

func (t *Arith) Add(args Args, reply *int) error {
	t.calls.Add(1)
	*reply = args.A + args.B
	return nil
}

func (t *Arith) Mul(args *Args, reply *int) error {
	t.calls.Add(1)
	*reply = args.A * args.B
	return nil
}

func (t *Arith) Divide(args Args, quo *Quotient) error {
	t.calls.Add(1)
	if args.B == 0 {
		return errors.New("divide by zero")
	}
	quo.Quo, quo.Rem = args.A/args.B, args.A%args.B
	return nil
}

// Sub is lab-style: no result.
func (t *Arith) Sub(args Args, reply *int) {
	t.calls.Add(1)
	*reply = args.A - args.B
}

func (t *Arith) Slow(args Args, reply *int) error {
	t.calls.Add(1)
	<-t.block
	*reply = args.A
	return nil
}

func (t *Arith) Panic(args Args, reply *int) error {
	panic("boom")
}

func (t *Arith) Echo(s string, reply *string) error {
	*reply = s
	return nil
}

// quietLogger keeps expected log lines out of test output but lets tests
// look at them.
type logSink struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// startServer serves a fresh Arith on a loopback listener; cleanup shuts
// the server down.
func startServer(t testing.TB, opts ...Option) (*Server, *Arith, string, *logSink) {
	t.Helper()
	sink := &logSink{}
	opts = append([]Option{WithLogger(log.New(sink, "", 0))}, opts...)
	s := NewServer(opts...)
	a := &Arith{block: make(chan struct{})}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		select {
		case <-a.block:
		default:
			close(a.block)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, a, l.Addr().String(), sink
}

func dial(t testing.TB, addr string, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func atMostOnce() semantics.Policy { return semantics.AtMostOnce() }

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// startStockServer serves StdArith with a stock net/rpc server; cleanup
// closes the listener and the connections.
func startStockServer(t *testing.T) string {
	t.Helper()
	srv := stdrpc.NewServer()
	if err := srv.Register(new(StdArith)); err != nil {
		t.Fatal(err)
	}
	return serveEach(t, srv.ServeConn).addr
}

// acceptLoop serves each connection it accepts on loopback with serve, on
// its own goroutine, and keeps them; cleanup closes the listener and the
// connections, then waits for serve to return on each.
type acceptLoop struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func serveEach(t *testing.T, serve func(io.ReadWriteCloser)) *acceptLoop {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptLoop{addr: l.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns = append(a.conns, nc)
			a.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for _, nc := range a.accepted() {
			nc.Close()
		}
		wg.Wait()
	})
	return a
}

// accepted returns the connections accepted so far.
func (a *acceptLoop) accepted() []net.Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]net.Conn(nil), a.conns...)
}

// setIdleLook sets how often the transports' idle watchers look at their
// connections (idleLook) for the rest of the test, and restores it after.
// A watcher reads it when it starts. An hour keeps the watcher from giving
// an idle connection a reader during the test, so that what a caller finds
// is what it sees itself; a millisecond gives one at once. Tests that set
// it must not run in parallel.
func setIdleLook(t testing.TB, d time.Duration) {
	t.Helper()
	was := idleLook.Swap(int64(d))
	t.Cleanup(func() { idleLook.Store(was) })
}

// setInlineGrace sets how often the server's inline watcher looks at the
// requests running on the goroutines that read them (inlineGrace) for the
// rest of the test, and restores it after: one running at two looks in a
// row has its reading handed to another goroutine. A watcher reads it when
// it starts. A grace no call reaches (a minute) keeps every lone request on
// its reading goroutine; a nanosecond hands reading off on nearly every
// request. Tests that set it must not run in parallel.
func setInlineGrace(t testing.TB, d time.Duration) {
	t.Helper()
	was := inlineGrace.Swap(int64(d))
	t.Cleanup(func() { inlineGrace.Store(was) })
}
