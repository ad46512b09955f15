package otelrpc_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/otelrpc"
	"github.com/semrpc/semrpc/semantics"
)

// Tracing both ends of a call: the client's span, with an event per
// attempt, and the server's spans, its children: the at-most-once session
// handshake the call needed first, and the call.
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	opts := []otelrpc.Option{otelrpc.WithTracerProvider(tp), otelrpc.WithPropagators(propagation.TraceContext{})}

	srv := rpc.NewServer(otelrpc.ServerOption(opts...))
	if err := srv.Register(new(Bank)); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	clientOpts := append(otelrpc.ClientOptions(opts...), rpc.WithSemantics(semantics.AtMostOnce()))
	client, err := rpc.Dial(ctx, "tcp", l.Addr().String(), clientOpts...)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var balance int
	if err := client.Call(ctx, "Bank.Deposit", 20, &balance); err != nil {
		log.Fatal(err)
	}
	for _, s := range spans.Ended() {
		fmt.Println(s.SpanKind(), s.Name(), "parent valid:", s.Parent().IsValid())
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				if a.Key == otelrpc.KeyClass {
					fmt.Println("  ", e.Name, a.Value.AsString())
				}
			}
		}
	}
	// Output:
	// server _semrpc/Open parent valid: true
	// server Bank/Deposit parent valid: true
	// client Bank/Deposit parent valid: false
	//    semrpc.attempt ok
}
