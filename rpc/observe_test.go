package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

type traceKey struct{}

func TestInterceptorsAndStats(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := func(tag string) Interceptor {
		return func(ctx context.Context, call *CallInfo, next Handler) error {
			mu.Lock()
			seen = append(seen, tag+">"+call.ServiceMethod)
			mu.Unlock()
			err := next(context.WithValue(ctx, traceKey{}, tag), call)
			mu.Lock()
			seen = append(seen, tag+"<")
			mu.Unlock()
			return err
		}
	}
	deny := func(ctx context.Context, call *CallInfo, next Handler) error {
		if call.ServiceMethod == "Arith.Mul" {
			return fmt.Errorf("denied by interceptor: %w", ErrRejected)
		}
		return next(ctx, call)
	}
	srv, a, addr, _ := startServer(t, WithServerInterceptor(record("s1")), WithServerInterceptor(record("s2")), WithServerInterceptor(deny))
	c := dial(t, addr, WithClientInterceptor(record("c1")), WithClientInterceptor(record("c2")))
	ctx := ctxT(t)

	var r int
	if err := c.Call(ctx, "Arith.Add", Args{1, 2}, &r); err != nil || r != 3 {
		t.Fatalf("Add: %d, %v", r, err)
	}
	want := "c1>Arith.Add c2>Arith.Add s1>Arith.Add s2>Arith.Add s2< s1< c2< c1<"
	mu.Lock()
	got := strings.Join(seen, " ")
	seen = nil
	mu.Unlock()
	if got != want {
		t.Errorf("interceptor order:\n got %s\nwant %s", got, want)
	}

	err := c.Call(ctx, "Arith.Mul", &Args{2, 3}, &r)
	if err == nil || !strings.Contains(err.Error(), "denied by interceptor") || !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("a server interceptor's refusal did not reach the caller as not executed: %v", err)
	}
	if a.calls.Load() != 1 {
		t.Errorf("the refused method ran (calls=%d)", a.calls.Load())
	}
	var q Quotient
	c.Call(ctx, "Arith.Divide", Args{1, 0}, &q)

	cs := c.Stats()
	if m := cs.Methods["Arith.Add"]; m.Calls != 1 || m.Errors != 0 || m.Latency <= 0 || m.Max <= 0 || m.Mean() <= 0 {
		t.Errorf("client stats for Add: %+v", m)
	}
	if m := cs.Methods["Arith.Mul"]; m.Calls != 1 || m.Errors != 1 {
		t.Errorf("client stats for Mul: %+v", m)
	}
	if cs.Run.Attempts != 3 {
		t.Errorf("client attempts = %d, want 3", cs.Run.Attempts)
	}
	ss := srv.Stats()
	if m := ss.Methods["Arith.Add"]; m.Calls != 1 || m.Errors != 0 || m.Latency <= 0 {
		t.Errorf("server stats for Add: %+v", m)
	}
	if m := ss.Methods["Arith.Divide"]; m.Calls != 1 || m.Errors != 1 {
		t.Errorf("server stats for Divide: %+v", m)
	}
	if m := ss.Methods["Arith.Mul"]; m.Calls != 0 {
		t.Errorf("server counted a refused call as executed: %+v", m)
	}
	if ss.Connections != 1 {
		t.Errorf("server connections = %d, want 1", ss.Connections)
	}
}

// Duplicates answered by the table show in the server's stats, and the
// client's retries in its own.
func TestStatsCountDuplicatesAndRetries(t *testing.T) {
	srv := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	close(a.block)
	srv.Register(a)
	// A transport that loses every first reply: the server runs the call,
	// the client retries, the table answers.
	lossy := &replyLoser{t: directTransport{srv}}
	c := NewClient(lossy, WithSemantics(semantics.AtMostOnce(semantics.Backoff(1, 1))))
	defer c.Close()
	var r int
	for i := 0; i < 10; i++ {
		if err := c.Call(ctxT(t), "Arith.Add", Args{i, 1}, &r); err != nil || r != i+1 {
			t.Fatalf("call %d: %d, %v", i, r, err)
		}
	}
	if got := a.calls.Load(); got != 10 {
		t.Errorf("method ran %d times for 10 at-most-once calls", got)
	}
	ts := srv.Stats().Table
	if ts.Duplicates != 10 {
		t.Errorf("table answered %d duplicates, want 10", ts.Duplicates)
	}
	cs := c.Stats()
	if cs.Run.Retries < 10 || cs.SessionsOpened != 1 {
		t.Errorf("client stats: %+v", cs)
	}
}

// directTransport hands requests to a server core in process.
type directTransport struct{ srv *Server }

type valueDecoder struct{ v any }

func (d valueDecoder) DecodeArgs(dst any) error {
	return copyValue(dst, d.v)
}

func (d directTransport) RoundTrip(ctx context.Context, req *Request, reply any) error {
	var h *semantics.Header
	if req.Header != nil {
		hh := *req.Header
		h = &hh
	}
	r, err := d.srv.Handle(ctx, req.ServiceMethod, h, valueDecoder{req.Args})
	if err != nil {
		return DecodeError(EncodeError(err))
	}
	return copyValue(reply, r)
}

func (directTransport) Close() error { return nil }

// replyLoser loses the reply of every request it has not seen before.
type replyLoser struct {
	t    Transport
	mu   sync.Mutex
	seen map[semantics.Header]bool
}

func (l *replyLoser) RoundTrip(ctx context.Context, req *Request, reply any) error {
	err := l.t.RoundTrip(ctx, req, reply)
	if req.Header == nil || req.ServiceMethod == openMethod {
		return err
	}
	key := *req.Header
	key.Ack = 0
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[semantics.Header]bool{}
	}
	if !l.seen[key] {
		l.seen[key] = true
		return semantics.MaybeExecuted(errors.New("reply lost"))
	}
	return err
}

func (l *replyLoser) Close() error { return nil }

// A call whose session handshake got no answer was itself never sent: its
// verdict is "not executed", even though the handshake may have run.
func TestHandshakeFailureMeansCallNotExecuted(t *testing.T) {
	srv := NewServer(WithLogger(discardLogger()))
	a := &Arith{block: make(chan struct{})}
	close(a.block)
	srv.Register(a)
	lossy := &handshakeLoser{t: directTransport{srv}}
	c := NewClient(lossy, WithSemantics(semantics.AtMostOnce(semantics.Backoff(time.Millisecond, time.Millisecond))))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var r int
	err := c.Call(ctx, "Arith.Add", Args{1, 2}, &r)
	if !errors.Is(err, ErrNotExecuted) || errors.Is(err, ErrMaybeExecuted) {
		t.Fatalf("err = %v; want not executed, and not may-have-executed", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the context's error is lost: %v", err)
	}
	if a.calls.Load() != 0 || lossy.opens.Load() == 0 {
		t.Fatalf("calls %d, handshakes %d", a.calls.Load(), lossy.opens.Load())
	}
}

// handshakeLoser loses the reply of every session handshake.
type handshakeLoser struct {
	t     Transport
	opens atomic.Int64
}

func (l *handshakeLoser) RoundTrip(ctx context.Context, req *Request, reply any) error {
	err := l.t.RoundTrip(ctx, req, reply)
	if req.ServiceMethod == openMethod {
		l.opens.Add(1)
		return semantics.MaybeExecuted(errors.New("handshake reply lost"))
	}
	return err
}

func (l *handshakeLoser) Close() error { return nil }

func TestWithTimeout(t *testing.T) {
	_, _, addr, _ := startServer(t)
	c := dial(t, addr, WithTimeout(20*time.Millisecond))
	var r int
	start := time.Now()
	err := c.Call(context.Background(), "Arith.Slow", Args{}, &r)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("client-level timeout: %v after %v", err, time.Since(start))
	}
	// A call's own option wins over the client's; an earlier deadline of
	// the caller's context is kept.
	err = c.Call(context.Background(), "Arith.Add", Args{1, 1}, &r, WithTimeout(5*time.Second))
	if err != nil || r != 2 {
		t.Fatalf("call with its own timeout: %d, %v", r, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = c.Call(ctx, "Arith.Slow", Args{}, &r, WithTimeout(time.Hour))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the caller's earlier deadline was not kept: %v", err)
	}
}
