package otelrpc_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/otelrpc"
	"github.com/semrpc/semrpc/semantics"
)

// Over labrpc, with requests lost, the call's span has an event per attempt
// and the server span of the attempt that ran is its child.
func TestTracingOverLabrpcWithLostRequests(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	opts := []otelrpc.Option{otelrpc.WithTracerProvider(tp), otelrpc.WithPropagators(propagation.TraceContext{})}

	net := labrpc.MakeNetworkSeed(3)
	defer net.Cleanup()
	srv := labrpc.MakeServerWith(rpc.NewServer(otelrpc.ServerOption(opts...)))
	srv.AddService(labrpc.MakeService(&Bank{}))
	net.AddServer("bank", srv)
	end := net.MakeEnd("c2")
	net.Connect("c2", "bank")
	net.Enable("c2", true)
	c := rpc.NewClient(end, append(otelrpc.ClientOptions(opts...),
		rpc.WithSemantics(semantics.AtMostOnce(semantics.Backoff(time.Millisecond, time.Millisecond))))...)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The session first, on a reliable link; then every other request is lost.
	var bal int
	if err := c.Call(ctx, "Bank.Deposit", 1, &bal); err != nil {
		t.Fatal(err)
	}
	if err := net.SetLink("c2", labrpc.LinkConfig{DropRequest: 0.5}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := c.Call(ctx, "Bank.Deposit", 1, &bal); err != nil {
			t.Fatal(err)
		}
	}
	clients := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var servers []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			clients[s.SpanContext().SpanID()] = s
		} else if s.Name() != "_semrpc/Open" { // the session handshake's has a client parent too
			servers = append(servers, s)
		}
	}
	retried := 0
	for _, cs := range clients {
		ev := cs.Events()
		last := ev[len(ev)-1]
		if attr(last.Attributes, otelrpc.KeyClass).AsString() != "ok" {
			t.Errorf("last attempt of a call that succeeded: %v", last.Attributes)
		}
		for _, e := range ev[:len(ev)-1] {
			if c := attr(e.Attributes, otelrpc.KeyClass).AsString(); c != "maybe executed" {
				t.Errorf("a lost request's attempt has class %q, want maybe executed", c)
			}
		}
		if len(ev) > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no call was retried: the test did not lose requests")
	}
	for _, s := range servers {
		if _, ok := clients[s.Parent().SpanID()]; !ok {
			t.Errorf("server span %v has no client parent", s.SpanContext().SpanID())
		}
	}
	if len(servers) != len(clients) {
		t.Errorf("%d server spans for %d calls; lost requests never reach the server", len(servers), len(clients))
	}
}
