package rpc

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Regression: write() failed the connection before RoundTrip had taken its
// own call out of the pending map, so fail() answered that call as
// may-have-executed and RoundTrip took that verdict: arguments that cannot
// be encoded (the request never left the client) were reported as
// ErrMaybeExecuted instead of rejected / not executed.
func TestReviewUnencodableArgsAreRejectedNotMaybeExecuted(t *testing.T) {
	_, a, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	err := c.Call(ctxT(t), "Arith.Add", nil, &r) // gob: cannot encode nil value
	if err == nil {
		t.Fatal("call with nil args succeeded")
	}
	if errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, ErrNotExecuted) {
		t.Errorf("unencodable args: %v; want not executed, never may-have-executed", err)
	}
	if n := a.calls.Load(); n != 0 {
		t.Errorf("method ran %d times", n)
	}
	// The client goes on working (it redials if it had to drop the connection).
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r); err != nil || r != 3 {
		t.Fatalf("next call: %d, %v", r, err)
	}
}

// Regression: gob panics on a nil pointer argument, and write() held the
// connection's write mutex without a defer, so after the panic (recovered by
// the caller, as an HTTP server does) every later call on the client blocked
// forever on that mutex, deaf to its context.
func TestReviewNilPointerArgsDoNotWedgeTheClient(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = errors.New("panic escaped Call")
				t.Errorf("Call panicked: %v", p)
			}
		}()
		err = c.Call(ctxT(t), "Arith.Mul", (*Args)(nil), &r)
	}()
	if err == nil || errors.Is(err, ErrMaybeExecuted) {
		t.Errorf("nil pointer args: %v; want a not-executed error", err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- c.Call(ctx, "Arith.Add", Args{1, 2}, &r)
	}()
	select {
	case err := <-done:
		if err != nil || r != 3 {
			t.Fatalf("next call: %d, %v", r, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: the call after a panicking encode never returned")
	}
}

// blackHole accepts connections and reads them without ever answering. got
// is closed when the first bytes arrive.
func blackHole(t *testing.T) (addr string, got <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					if _, err := nc.Read(buf); err != nil {
						return
					}
					once.Do(func() { close(ch) })
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), ch
}

// Regression: session() serialised handshakes with a plain mutex, so a call
// whose context ended while another call's handshake was in progress kept
// waiting for that handshake (here, until the other call's context ended),
// instead of returning at once as Call promises.
func TestReviewSessionHandshakeWaitHonoursContext(t *testing.T) {
	addr, got := blackHole(t)
	c := dial(t, addr, WithSemantics(semantics.AtMostOnce()))

	long, cancelLong := context.WithCancel(context.Background())
	var r int
	first := c.Go(long, "Arith.Add", Args{1, 2}, &r)
	defer func() {
		cancelLong()
		<-first.Done
	}()
	select {
	case <-got: // the first call's handshake is on the wire and holds the lock
	case <-time.After(5 * time.Second):
		t.Fatal("handshake never sent")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Call(ctx, "Arith.Add", Args{1, 2}, new(int)) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNotExecuted) {
			t.Errorf("err = %v, want deadline exceeded, not executed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("call did not return after its deadline while another handshake was pending")
	}
}

// Regression: when a call's context ended while the reader was decoding its
// reply, RoundTrip waited for the decode with no bound, so a peer that sent
// a reply header and then stalled in the middle of the body kept the call
// from returning (the Transport contract says it returns promptly).
func TestReviewCancelDuringStalledReplyBodyReturnsPromptly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srvDone := make(chan struct{})
	release := make(chan struct{})
	go func() {
		defer close(srvDone)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		dec := gob.NewDecoder(nc)
		var req wireRequest
		if dec.Decode(&req) != nil || dec.DecodeValue(reflectZero) != nil {
			return
		}
		var buf bytes.Buffer
		enc := gob.NewEncoder(&buf)
		enc.Encode(&wireResponse{ServiceMethod: req.ServiceMethod, Seq: req.Seq})
		enc.Encode(Quotient{Quo: 123456, Rem: 654321})
		b := buf.Bytes()
		nc.Write(b[:len(b)-2]) // all but the end of the body, then stall
		<-release
	}()
	defer func() { close(release); <-srvDone }()

	c := dial(t, l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	var q Quotient
	go func() { done <- c.Call(ctx, "Arith.Divide", Args{7, 2}, &q) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want may-have-executed, wrapping the deadline", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("call did not return after its deadline while its reply body stalled")
	}
}

// Regression: the durability check of exactly-once calls was made only when
// the session was opened, so once an at-most-once call had opened the
// client's session against a server without durable records, exactly-once
// calls reused it and ran there, silently degraded to at-most-once.
func TestReviewExactlyOnceRefusedOnNonDurableServerAfterAtMostOnceSession(t *testing.T) {
	_, a, addr, _ := startServer(t)
	c := dial(t, addr)
	var r int
	if err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r, WithSemantics(semantics.AtMostOnce())); err != nil {
		t.Fatal(err)
	}
	before := a.calls.Load()
	err := c.Call(ctxT(t), "Arith.Add", Args{1, 2}, &r, WithSemantics(semantics.ExactlyOnce()))
	if !errors.Is(err, semantics.ErrNotDurable) || !errors.Is(err, ErrNotExecuted) {
		t.Errorf("exactly-once on a non-durable server: %v; want ErrNotDurable, not executed", err)
	}
	if n := a.calls.Load() - before; n != 0 {
		t.Errorf("exactly-once call ran %d times on a server without durable records", n)
	}
}

// Regression: DecodeError turned a response code it does not know (from a
// newer server, say, or a damaged peer) into a rejection, that is "the
// method did not run". Only the safe assumption fits an unknown answer:
// may have executed.
func TestReviewUnknownResponseCodeIsMaybeExecuted(t *testing.T) {
	for _, code := range []Code{CodeInterrupted + 1, CodeInterrupted + 2, 200, 255} {
		err := DecodeError(code, "something the client cannot read")
		if err == nil {
			t.Fatalf("code %d: nil error", code)
		}
		if got := semantics.ClassOf(err); got != semantics.ClassMaybeExecuted {
			t.Errorf("code %d decodes as %v (%v); an unknown code must not claim the method did not run", code, got, err)
		}
		if errors.Is(err, ErrRejected) {
			t.Errorf("code %d decodes as a rejection: %v", code, err)
		}
	}
}
