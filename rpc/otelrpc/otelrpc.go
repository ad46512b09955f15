// Package otelrpc traces and measures semrpc calls with OpenTelemetry.
//
// It is optional: only programs that import it build OpenTelemetry. It
// provides interceptors for both ends:
//
//   - on the client, a span per call (kind client) with an event per
//     attempt giving its number, failure class and the backoff before it;
//     the trace context travels to the server in the call's metadata;
//   - on the server, a span per request (kind server), a child of the
//     caller's span; the at-most-once session handshake a call makes
//     first ("_semrpc/Open") is a request too, a child of that call's span;
//   - metrics: call durations on both ends, attempts by failure class, and
//     the backoff waited between attempts.
//
// Use ClientOptions at Dial (or NewClient) and ServerOption at NewServer:
//
//	srv := rpc.NewServer(otelrpc.ServerOption())
//	c, err := rpc.Dial(ctx, "tcp", addr, otelrpc.ClientOptions()...)
//
// Without WithTracerProvider, WithMeterProvider and WithPropagators the
// global ones (go.opentelemetry.io/otel) are used, read when the
// interceptors are made; without a global propagator, W3C trace context and
// baggage carry the trace in metadata ("traceparent", "tracestate",
// "baggage").
package otelrpc

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/semrpc/semrpc/rpc/otelrpc"

// Attribute keys. The rpc.* keys follow OpenTelemetry's RPC conventions;
// the semrpc.* keys are this library's.
const (
	KeySystem   = attribute.Key("rpc.system")           // always "semrpc"
	KeyService  = attribute.Key("rpc.service")          // "Service" of "Service.Method"
	KeyMethod   = attribute.Key("rpc.method")           // "Method" of "Service.Method"
	KeyPeer     = attribute.Key("network.peer.address") // the caller, on the server
	KeyPolicy   = attribute.Key("semrpc.policy")        // the call's failure semantics
	KeyAttempt  = attribute.Key("semrpc.attempt")       // the attempt's number, from 1
	KeyClass    = attribute.Key("semrpc.class")         // the failure class: "ok", "not sent", "maybe executed"…
	KeyBackoff  = attribute.Key("semrpc.backoff")       // seconds waited before the attempt
	KeyAttempts = attribute.Key("semrpc.attempts")      // attempts the call made
	KeyVerdict  = attribute.Key("semrpc.verdict")       // a failed call: "not executed", "maybe executed", "executed"
	KeySeq      = attribute.Key("semrpc.seq")           // the at-most-once sequence number, on the server
)

// EventAttempt names the span event of each attempt.
const EventAttempt = "semrpc.attempt"

// Metric names.
const (
	MetricClientDuration = "rpc.client.call.duration" // histogram, seconds, per call
	MetricServerDuration = "rpc.server.call.duration" // histogram, seconds, per request
	MetricAttempts       = "semrpc.client.attempts"   // counter, per attempt, by class
	MetricBackoff        = "semrpc.client.backoff"    // histogram, seconds waited before a retry
)

// An Option configures the interceptors.
type Option func(*config)

type config struct {
	tp    trace.TracerProvider
	mp    metric.MeterProvider
	props propagation.TextMapPropagator
}

// WithTracerProvider sets where spans go (default: otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithMeterProvider sets where metrics go (default: otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithPropagators sets how the trace context is written into and read from
// metadata. By default it is otel.GetTextMapPropagator() if one was set when
// the interceptors are made, else W3C trace context and baggage.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.props = p }
}

// instruments are the tracer and metric instruments of one interceptor set.
type instruments struct {
	tracer         trace.Tracer
	props          propagation.TextMapPropagator
	clientDuration metric.Float64Histogram
	serverDuration metric.Float64Histogram
	attempts       metric.Int64Counter
	backoff        metric.Float64Histogram
}

func newInstruments(opts []Option) *instruments {
	c := config{}
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.props == nil {
		c.props = otel.GetTextMapPropagator()
		if len(c.props.Fields()) == 0 {
			// No global propagator set: the trace context would not
			// travel at all. W3C's is what every OpenTelemetry SDK reads.
			c.props = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		}
	}
	meter := c.mp.Meter(ScopeName)
	in := &instruments{tracer: c.tp.Tracer(ScopeName), props: c.props}
	var err error
	// A meter refuses an instrument only for an invalid name or option,
	// which these are not; it returns a usable instrument with its error,
	// which goes to otel's error handler.
	report := func(e error) {
		if e != nil {
			err = errors.Join(err, e)
		}
	}
	var e error
	in.clientDuration, e = meter.Float64Histogram(MetricClientDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of semrpc calls as the caller saw them, retries included."))
	report(e)
	in.serverDuration, e = meter.Float64Histogram(MetricServerDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of semrpc requests on the server."))
	report(e)
	in.attempts, e = meter.Int64Counter(MetricAttempts, metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts of semrpc calls, by failure class."))
	report(e)
	in.backoff, e = meter.Float64Histogram(MetricBackoff, metric.WithUnit("s"),
		metric.WithDescription("Time a semrpc call waited before a retry."))
	report(e)
	if err != nil {
		otel.Handle(err)
	}
	return in
}

// ClientOptions returns the options that trace and measure a client's
// calls: ClientInterceptor and AttemptInterceptor, sharing instruments.
// Give them to rpc.Dial or rpc.NewClient.
func ClientOptions(opts ...Option) []rpc.Option {
	in := newInstruments(opts)
	return []rpc.Option{
		rpc.WithClientInterceptor(in.clientInterceptor),
		rpc.WithAttemptInterceptor(in.attemptInterceptor),
	}
}

// ClientInterceptor returns the interceptor that makes a span per call,
// puts the trace context in the call's metadata and records the call's
// duration. AttemptInterceptor adds the attempts' events to its span.
func ClientInterceptor(opts ...Option) rpc.ClientInterceptor {
	return newInstruments(opts).clientInterceptor
}

// AttemptInterceptor returns the interceptor that records each attempt: an
// event on the call's span (its number, failure class, backoff and error)
// and the attempts and backoff metrics.
func AttemptInterceptor(opts ...Option) rpc.AttemptInterceptor {
	return newInstruments(opts).attemptInterceptor
}

// ServerOption returns the option that installs ServerInterceptor on a
// server.
func ServerOption(opts ...Option) rpc.Option {
	return rpc.WithServerInterceptor(ServerInterceptor(opts...))
}

// ServerInterceptor returns the interceptor that makes a span per request,
// a child of the caller's span when the request's metadata carries its
// trace context, and records the request's duration.
func ServerInterceptor(opts ...Option) rpc.Interceptor {
	return newInstruments(opts).serverInterceptor
}

func methodAttrs(serviceMethod string) []attribute.KeyValue {
	svc, m := serviceMethod, ""
	if dot := strings.LastIndex(serviceMethod, "."); dot >= 0 {
		svc, m = serviceMethod[:dot], serviceMethod[dot+1:]
	}
	return []attribute.KeyValue{KeySystem.String("semrpc"), KeyService.String(svc), KeyMethod.String(m)}
}

// spanName is "Service/Method", as OpenTelemetry's RPC conventions name
// spans.
func spanName(serviceMethod string) string {
	return strings.Replace(serviceMethod, ".", "/", 1)
}

func (in *instruments) clientInterceptor(ctx context.Context, ci *rpc.CallInfo, next rpc.Handler) error {
	attrs := methodAttrs(ci.ServiceMethod)
	if ci.Policy != nil {
		attrs = append(attrs, KeyPolicy.String(ci.Policy.Kind().String()))
	}
	ctx, span := in.tracer.Start(ctx, spanName(ci.ServiceMethod), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	defer span.End()
	ctx = in.inject(ctx)
	start := time.Now()
	err := next(ctx, ci)
	in.clientDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(append(attrs, KeyClass.String(semantics.ClassOf(err).String()))...))
	if err != nil {
		span.SetAttributes(KeyVerdict.String(verdict(err)))
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// verdict says what a failed call tells its caller about the method.
func verdict(err error) string {
	switch {
	case errors.Is(err, semantics.ErrNotExecuted):
		return "not executed"
	case errors.Is(err, semantics.ErrMaybeExecuted):
		return "maybe executed"
	case errors.Is(err, semantics.ErrApplication), errors.Is(err, semantics.ErrReplyUnusable):
		return "executed"
	}
	return "maybe executed"
}

// inject writes the trace context of ctx into its outgoing metadata.
func (in *instruments) inject(ctx context.Context) context.Context {
	old, _ := rpc.FromOutgoingContext(ctx)
	md := old.Copy()
	if md == nil {
		md = rpc.Metadata{}
	}
	in.props.Inject(ctx, carrier(md))
	if len(md) == 0 {
		return ctx // nothing to carry (no propagator, or no span)
	}
	return rpc.NewOutgoingContext(ctx, md)
}

func (in *instruments) attemptInterceptor(ctx context.Context, a *rpc.AttemptInfo, next rpc.AttemptHandler) error {
	err := next(ctx, a)
	class := semantics.ClassOf(err).String()
	attrs := []attribute.KeyValue{KeyAttempt.Int(a.Attempt), KeyClass.String(class), KeyBackoff.Float64(a.Backoff.Seconds())}
	if err != nil {
		attrs = append(attrs, attribute.String("error.message", err.Error()))
	}
	trace.SpanFromContext(ctx).AddEvent(EventAttempt, trace.WithAttributes(attrs...))
	mattrs := append(methodAttrs(a.ServiceMethod), KeyClass.String(class))
	in.attempts.Add(ctx, 1, metric.WithAttributes(mattrs...))
	if a.Attempt > 1 {
		in.backoff.Record(ctx, a.Backoff.Seconds(), metric.WithAttributes(methodAttrs(a.ServiceMethod)...))
	}
	return err
}

func (in *instruments) serverInterceptor(ctx context.Context, ci *rpc.CallInfo, next rpc.Handler) error {
	if md, ok := rpc.FromIncomingContext(ctx); ok && len(md) > 0 {
		ctx = in.props.Extract(ctx, carrier(md))
	}
	attrs := methodAttrs(ci.ServiceMethod)
	spanAttrs := attrs
	if p, ok := rpc.PeerFromContext(ctx); ok && p.Addr != nil {
		spanAttrs = append(spanAttrs, KeyPeer.String(p.Addr.String()))
	}
	if ci.Header != nil {
		spanAttrs = append(spanAttrs, KeySeq.Int64(int64(ci.Header.Seq)))
	}
	ctx, span := in.tracer.Start(ctx, spanName(ci.ServiceMethod), trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(spanAttrs...))
	defer span.End()
	start := time.Now()
	err := next(ctx, ci)
	in.serverDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(append(attrs, KeyClass.String(semantics.ClassOf(err).String()))...))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// carrier lets a propagator read and write metadata. Its keys are
// lowercase, as propagators' are.
type carrier rpc.Metadata

func (c carrier) Get(key string) string { return rpc.Metadata(c).First(key) }

func (c carrier) Set(key, value string) { rpc.Metadata(c).Set(key, value) }

func (c carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

var _ propagation.TextMapCarrier = carrier(nil)
