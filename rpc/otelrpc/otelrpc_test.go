package otelrpc_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/otelrpc"
	"github.com/semrpc/semrpc/semantics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Bank is the traced service.
type Bank struct{ traced atomic.Bool }

func (b *Bank) Deposit(ctx context.Context, amount int, balance *int) error {
	b.traced.Store(trace.SpanContextFromContext(ctx).IsValid())
	if amount < 0 {
		return errors.New("negative amount")
	}
	*balance = 100 + amount
	return nil
}

// flaky fails the first `fails` attempts of calls (not of the session
// handshake) as not sent, then passes them on.
type flaky struct {
	rpc.Transport
	fails atomic.Int32
}

func (f *flaky) RoundTrip(ctx context.Context, req *rpc.Request, reply any) error {
	if !strings.HasPrefix(req.ServiceMethod, "_semrpc.") && f.fails.Add(-1) >= 0 {
		return semantics.NotSent(errors.New("flaky: refused"))
	}
	return f.Transport.RoundTrip(ctx, req, reply)
}

type harness struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	client *rpc.Client
	bank   *Bank
	tr     *flaky
}

func setup(t *testing.T, policy semantics.Policy) *harness {
	t.Helper()
	h := &harness{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), bank: &Bank{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	opts := []otelrpc.Option{otelrpc.WithTracerProvider(tp), otelrpc.WithMeterProvider(mp), otelrpc.WithPropagators(propagation.TraceContext{})}

	srv := rpc.NewServer(otelrpc.ServerOption(opts...))
	if err := srv.Register(h.bank); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	h.tr = &flaky{Transport: rpc.NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", l.Addr().String())
	})}
	h.client = rpc.NewClient(h.tr, append(otelrpc.ClientOptions(opts...), rpc.WithSemantics(policy))...)
	t.Cleanup(func() {
		h.client.Close()
		srv.Shutdown(context.Background())
	})
	return h
}

func attr(attrs []attribute.KeyValue, k attribute.Key) attribute.Value {
	for _, a := range attrs {
		if a.Key == k {
			return a.Value
		}
	}
	return attribute.Value{}
}

func TestSpanPerCallWithAnEventPerAttemptAndServerChild(t *testing.T) {
	for _, p := range []semantics.Policy{semantics.AtLeastOnce(semantics.Backoff(time.Millisecond, time.Millisecond)), semantics.AtMostOnce(semantics.Backoff(time.Millisecond, time.Millisecond))} {
		t.Run(p.Kind().String(), func(t *testing.T) {
			h := setup(t, p)
			h.tr.fails.Store(1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var bal int
			if err := h.client.Call(ctx, "Bank.Deposit", 5, &bal); err != nil || bal != 105 {
				t.Fatalf("Deposit: %d, %v", bal, err)
			}
			var client, server sdktrace.ReadOnlySpan
			for _, s := range h.spans.Ended() {
				switch s.SpanKind() {
				case trace.SpanKindClient:
					client = s
				case trace.SpanKindServer:
					if s.Name() == "Bank/Deposit" { // not the session handshake's
						server = s
					}
				}
			}
			if client == nil || server == nil {
				t.Fatalf("spans %v: want one client and one server span", h.spans.Ended())
			}
			if client.Name() != "Bank/Deposit" || attr(client.Attributes(), otelrpc.KeyPolicy).AsString() != p.Kind().String() {
				t.Errorf("client span %q with policy %q", client.Name(), attr(client.Attributes(), otelrpc.KeyPolicy).AsString())
			}
			if server.Parent().SpanID() != client.SpanContext().SpanID() || server.SpanContext().TraceID() != client.SpanContext().TraceID() {
				t.Errorf("server span's parent %v, trace %v; want the client span %v", server.Parent().SpanID(), server.SpanContext().TraceID(), client.SpanContext())
			}
			if !h.bank.traced.Load() {
				t.Error("the method's context carries no span")
			}
			if attr(server.Attributes(), otelrpc.KeyPeer).AsString() == "" {
				t.Error("server span has no peer address")
			}
			if p.Kind() == semantics.KindAtMostOnce && attr(server.Attributes(), otelrpc.KeySeq).AsInt64() != 1 {
				t.Errorf("server span seq = %v, want 1", attr(server.Attributes(), otelrpc.KeySeq))
			}
			ev := client.Events()
			if len(ev) != 2 {
				t.Fatalf("client span events %v, want 2 attempts", ev)
			}
			wantClass := []string{"not sent", "ok"}
			for i, e := range ev {
				if e.Name != otelrpc.EventAttempt || attr(e.Attributes, otelrpc.KeyAttempt).AsInt64() != int64(i+1) ||
					attr(e.Attributes, otelrpc.KeyClass).AsString() != wantClass[i] {
					t.Errorf("event %d: %s %v", i, e.Name, e.Attributes)
				}
				if backoff := attr(e.Attributes, otelrpc.KeyBackoff).AsFloat64(); (backoff > 0) != (i > 0) {
					t.Errorf("event %d: backoff %v, want > 0 exactly after the first attempt", i, backoff)
				}
			}

			var rm metricdata.ResourceMetrics
			if err := h.reader.Collect(ctx, &rm); err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					switch d := m.Data.(type) {
					case metricdata.Sum[int64]:
						for _, dp := range d.DataPoints {
							c, _ := dp.Attributes.Value(otelrpc.KeyClass)
							got[m.Name+"/"+c.AsString()] += dp.Value
						}
					case metricdata.Histogram[float64]:
						for _, dp := range d.DataPoints {
							got[m.Name] += int64(dp.Count)
						}
					}
				}
			}
			requests := int64(1)
			if p.Kind() == semantics.KindAtMostOnce {
				requests++ // the session handshake, which server interceptors see too
			}
			want := map[string]int64{
				otelrpc.MetricAttempts + "/not sent": 1, otelrpc.MetricAttempts + "/ok": 1,
				otelrpc.MetricClientDuration: 1, otelrpc.MetricServerDuration: requests, otelrpc.MetricBackoff: 1,
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("metric %s = %d, want %d (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestFailedCallSpanHasErrorStatusAndVerdict(t *testing.T) {
	h := setup(t, semantics.NoRetry())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var bal int
	if err := h.client.Call(ctx, "Bank.Deposit", -1, &bal); !errors.Is(err, rpc.ErrApplication) {
		t.Fatalf("Deposit(-1): %v", err)
	}
	h.tr.fails.Store(1)
	if err := h.client.Call(ctx, "Bank.Deposit", 1, &bal); !errors.Is(err, rpc.ErrNotExecuted) {
		t.Fatalf("Deposit with a refused attempt: %v", err)
	}
	var verdicts []string
	for _, s := range h.spans.Ended() {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		if s.Status().Code != codes.Error {
			t.Errorf("span status %v, want Error", s.Status())
		}
		verdicts = append(verdicts, attr(s.Attributes(), otelrpc.KeyVerdict).AsString())
	}
	if len(verdicts) != 2 || verdicts[0] != "executed" || verdicts[1] != "not executed" {
		t.Fatalf("verdicts %v, want [executed, not executed]", verdicts)
	}
}

// Without WithPropagators and without a global propagator, the trace
// context still travels (W3C trace context).
func TestTraceContextTravelsWithoutAConfiguredPropagator(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	var seen rpc.Metadata
	srv := rpc.NewServer(otelrpc.ServerOption(otelrpc.WithTracerProvider(tp)),
		rpc.WithServerInterceptor(func(ctx context.Context, ci *rpc.CallInfo, next rpc.Handler) error {
			seen, _ = rpc.FromIncomingContext(ctx)
			return next(ctx, ci)
		}))
	srv.Register(&Bank{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, "tcp", l.Addr().String(), otelrpc.ClientOptions(otelrpc.WithTracerProvider(tp))...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var bal int
	if err := c.Call(ctx, "Bank.Deposit", 1, &bal); err != nil {
		t.Fatal(err)
	}
	if seen.First("traceparent") == "" {
		t.Fatalf("request metadata %v has no traceparent", seen)
	}
	ended := spans.Ended()
	if len(ended) != 2 || ended[0].Parent().SpanID() != ended[1].SpanContext().SpanID() {
		t.Fatalf("spans %v: want a server span child of the client span", ended)
	}
}
