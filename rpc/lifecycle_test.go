package rpc

import (
	"context"
	"encoding/gob"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
)

func TestCancelReturnsAtOnceAndClientStaysUsable(t *testing.T) {
	_, a, addr, _ := startServer(t)
	c := dial(t, addr)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var r int
	errc := make(chan error, 1)
	go func() { errc <- c.Call(ctx, "Arith.Slow", Args{1, 0}, &r) }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: call did not return after its deadline")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if !errors.Is(err, ErrMaybeExecuted) || errors.Is(err, ErrNotExecuted) {
		t.Errorf("a sent call cut by its deadline must be may-have-executed: %v", err)
	}
	if a.calls.Load() != 1 {
		t.Errorf("Slow ran %d times, want 1", a.calls.Load())
	}
	// The client is still usable, and its slot was freed.
	var sum int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &sum); err != nil || sum != 3 {
		t.Fatalf("after cancel: %d, %v", sum, err)
	}

	// A context that already ended: not sent, definitely not executed.
	dead, cancel2 := context.WithCancel(context.Background())
	cancel2()
	err = c.Call(dead, "Arith.Add", Args{1, 2}, &sum)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNotExecuted) {
		t.Errorf("call with ended ctx: %v, want canceled and not executed", err)
	}
}

func TestShutdownWaitsForRunningCalls(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c := dial(t, l.Addr().String())

	var r int
	slow := c.Go(ctxT(t), "Arith.Slow", Args{7, 0}, &r)
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctxT(t)) }()

	select {
	case err := <-served:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v, want ErrServerClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a call was running", err)
	case <-time.After(50 * time.Millisecond):
	}
	// New connections are refused.
	if nc, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		nc.Close()
		t.Error("dial succeeded after Shutdown closed the listener")
	}
	close(a.block)
	<-slow.Done
	if slow.Err != nil || r != 7 {
		t.Fatalf("running call: %d, %v; want it to finish with its reply", r, slow.Err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
}

func TestShutdownContextExpires(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	s.Register(a)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(l)
	c := dial(t, l.Addr().String())
	var r int
	slow := c.Go(ctxT(t), "Arith.Slow", Args{}, &r)
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	<-slow.Done
	if !errors.Is(slow.Err, ErrMaybeExecuted) || !errors.Is(slow.Err, ErrConnLost) {
		t.Errorf("pending call after forced close: %v, want connection lost, may have executed", slow.Err)
	}
	close(a.block) // let the method return so its goroutine ends
	s.Close()
}

func TestRedialAfterServerRestart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	serve := func(l net.Listener) (*Server, *Arith, chan error) {
		s := NewServer(WithLogger(discardLogger()))
		a := &Arith{block: make(chan struct{})}
		s.Register(a)
		done := make(chan error, 1)
		go func() { done <- s.Serve(l) }()
		return s, a, done
	}
	s1, a1, done1 := serve(l)
	c := dial(t, addr, WithRedialBackoff(time.Millisecond, 5*time.Millisecond))
	ctx := ctxT(t)
	var r int
	if err := c.Call(ctx, "Arith.Add", Args{1, 1}, &r); err != nil {
		t.Fatal(err)
	}
	// A call pending when the server dies fails with a clear error.
	slow := c.Go(ctx, "Arith.Slow", Args{}, &r)
	for a1.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- s1.Close() }() // Close waits for the running method
	<-done1
	<-slow.Done
	if !errors.Is(slow.Err, ErrConnLost) || !errors.Is(slow.Err, ErrMaybeExecuted) {
		t.Fatalf("pending call: %v, want connection lost / may have executed", slow.Err)
	}
	close(a1.block)
	<-closed

	// While nothing listens, NoRetry calls fail at once, not executed.
	err = c.Call(ctx, "Arith.Add", Args{1, 1}, &r)
	if !errors.Is(err, ErrNotExecuted) || errors.Is(err, ErrMaybeExecuted) {
		t.Fatalf("call with server down: %v, want not sent", err)
	}

	// The server comes back on the same address; the client redials.
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	s2, _, done2 := serve(l2)
	defer func() { s2.Close(); <-done2 }()
	if !testwait.Until(testwait.Deadline, func() bool {
		err = c.Call(ctx, "Arith.Add", Args{2, 3}, &r)
		return err == nil
	}) {
		t.Fatalf("client never redialled: %v", err)
	}
	if r != 5 {
		t.Fatalf("after redial: %d", r)
	}
}

func TestMessageSizeLimit(t *testing.T) {
	_, _, addr, sink := startServer(t, WithMaxMessageSize(64<<10))
	big := dial(t, addr)
	small := dial(t, addr)
	ctx := ctxT(t)

	var out string
	err := big.Call(ctx, "Arith.Echo", strings.Repeat("x", 100<<10), &out)
	if !errors.Is(err, ErrMessageTooLarge) || !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("oversized call: %v, want message too large, not executed", err)
	}
	// Other connections keep being served; the big client redials.
	var sum int
	if err := small.Call(ctx, "Arith.Add", Args{1, 2}, &sum); err != nil {
		t.Fatalf("other connection: %v", err)
	}
	if err := big.Call(ctx, "Arith.Echo", "ok", &out); err != nil || out != "ok" {
		t.Fatalf("same client after the limit: %q, %v", out, err)
	}
	if !strings.Contains(sink.String(), "message too large") {
		t.Errorf("server log has no clear line about the oversized message:\n%s", sink)
	}
}

func TestDefaultMessageLimitIs4MiB(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var out string
	if err := c.Call(ctxT(t), "Arith.Echo", strings.Repeat("y", 3<<20), &out); err != nil || len(out) != 3<<20 {
		t.Fatalf("3 MiB echo: len %d, %v", len(out), err)
	}
	err := c.Call(ctxT(t), "Arith.Echo", strings.Repeat("y", 5<<20), &out)
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("5 MiB: %v, want ErrMessageTooLarge", err)
	}
}

func TestMalformedBytesCloseOnlyThatConnection(t *testing.T) {
	_, a, addr, sink := startServer(t)
	good := dial(t, addr)
	inputs := [][]byte{
		{0x80, 0x01},                         // a length prefix of 128 bytes' length
		{0x05, 0x01, 0x02, 0x03, 0x04, 0x05}, // a message that is not gob
		{0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // absurd length
		[]byte("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: a long enough header to fill the message\r\n\r\n"),
	}
	for i, in := range inputs {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(in)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		_, rerr := nc.Read(buf)
		nc.Close()
		var ne net.Error
		if errors.As(rerr, &ne) && ne.Timeout() {
			t.Errorf("input %d: server kept a malformed connection open", i)
		}
		var sum int
		if err := good.Call(ctxT(t), "Arith.Add", Args{i, 1}, &sum); err != nil || sum != i+1 {
			t.Fatalf("input %d: good client: %d, %v", i, sum, err)
		}
	}
	if a.calls.Load() != int64(len(inputs)) {
		t.Errorf("calls = %d, want only the good ones", a.calls.Load())
	}
	if !strings.Contains(sink.String(), "closing connection") {
		t.Errorf("no clear log line for malformed input:\n%s", sink)
	}
}

func TestPanicInMethodIsAnApplicationError(t *testing.T) {
	_, _, addr, sink := startServer(t)
	c := dial(t, addr)
	var r int
	err := c.Call(ctxT(t), "Arith.Panic", Args{}, &r)
	if !errors.Is(err, ErrApplication) || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("err = %v", err)
	}
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 1}, &r); err != nil {
		t.Fatalf("server stopped serving after a panic: %v", err)
	}
	if !strings.Contains(sink.String(), "boom") {
		t.Error("panic not logged")
	}
}

func TestClientCloseFailsPendingAndLaterCalls(t *testing.T) {
	_, a, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	pending := c.Go(ctxT(t), "Arith.Slow", Args{}, &r)
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	<-pending.Done
	if !errors.Is(pending.Err, ErrClientClosed) || !errors.Is(pending.Err, ErrMaybeExecuted) {
		t.Errorf("pending: %v", pending.Err)
	}
	err := c.Call(ctxT(t), "Arith.Add", Args{}, &r)
	if !errors.Is(err, ErrClientClosed) || !errors.Is(err, ErrNotExecuted) {
		t.Errorf("after Close: %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				var r int
				if err := c.Call(ctxT(t), "Arith.Mul", &Args{g, i}, &r); err != nil || r != g*i {
					errs <- errors.Join(err, errors.New("wrong product"))
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Shutdown lets running calls finish, their replies included: a call that
// completes during Shutdown has its reply written before the connection
// closes. (Counting only execute() as running, not the write of the reply,
// Shutdown closed the connection under the reply: it was lost, and the
// caller told the call may have executed.)
func TestShutdownKeepsTheRepliesOfCallsThatFinishDuringIt(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	cli, srv := net.Pipe() // a write blocks until the peer reads it
	defer cli.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.ServeConn(srv)
	}()

	enc := gob.NewEncoder(cli)
	if err := enc.Encode(&wireRequest{ServiceMethod: "Arith.Slow", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(Args{7, 0}); err != nil {
		t.Fatal(err)
	}
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	for !s.shutting.Load() {
		time.Sleep(time.Millisecond)
	}
	close(a.block) // Slow returns; its reply waits for us to read it

	// Give a buggy Shutdown time to close the connection under the reply.
	var shutErr error
	shutReturned := false
	select {
	case shutErr = <-shut:
		shutReturned = true
	case <-time.After(500 * time.Millisecond):
	}

	dec := gob.NewDecoder(cli)
	var resp wireResponse
	var got int
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("reply of a call that completed during Shutdown was lost: %v", err)
	}
	if resp.Seq == goAwaySeq { // the shutdown notice; a stock client skips it too
		if err := dec.Decode(&emptyBody{}); err != nil {
			t.Fatal(err)
		}
		resp = wireResponse{} // gob leaves fields the message does not carry
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("reply of a call that completed during Shutdown was lost: %v", err)
		}
	}
	if err := dec.Decode(&got); err != nil || resp.Seq != 1 || resp.Error != "" || got != 7 {
		t.Fatalf("reply = %+v %d, %v; want seq 1, 7", resp, got, err)
	}
	if !shutReturned {
		shutErr = <-shut
	}
	if shutErr != nil {
		t.Errorf("Shutdown: %v", shutErr)
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after Shutdown")
	}
}

// Close returns only once the methods running on connections given to
// ServeConn have returned, as for those Serve accepted: no goroutine of the
// server outlives it. (Serve's connections are registered with the
// WaitGroup under the lock Close takes, so none slips past it either.)
func TestCloseWaitsForTheCallsOfServeConnConnections(t *testing.T) {
	s := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	cli, srv := net.Pipe()
	defer cli.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.ServeConn(srv)
	}()
	enc := gob.NewEncoder(cli)
	if err := enc.Encode(&wireRequest{ServiceMethod: "Arith.Slow", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(Args{7, 0}); err != nil {
		t.Fatal(err)
	}
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Error("Close returned while a method of a ServeConn connection was still running")
	case <-time.After(200 * time.Millisecond):
	}
	close(a.block)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the method returned")
	}
	<-served
}
