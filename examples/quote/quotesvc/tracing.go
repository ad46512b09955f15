package quotesvc

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/semrpc/semrpc/rpc/otelrpc"
)

// NewTracing returns a tracer provider that prints each span, as it ends,
// on one line of w, prefixed by who ("server s1", "client"). Shut it down
// when done.
func NewTracing(w io.Writer, who string) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(sdktrace.WithSyncer(&lineExporter{w: w, who: who}))
}

// lineExporter writes spans as lines:
//
//	client: span Quote/Price client trace=4bf92f35 span=00f067aa parent=- status=Unset attempts=[1:not sent 2:ok+12ms]
type lineExporter struct {
	mu  sync.Mutex // protects w
	w   io.Writer
	who string
}

func (e *lineExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range spans {
		parent := "-"
		if s.Parent().IsValid() {
			parent = s.Parent().SpanID().String()[:8]
		}
		var attempts []string
		for _, ev := range s.Events() {
			if ev.Name != otelrpc.EventAttempt {
				continue
			}
			var n int64
			var class string
			var backoff float64
			for _, a := range ev.Attributes {
				switch a.Key {
				case otelrpc.KeyAttempt:
					n = a.Value.AsInt64()
				case otelrpc.KeyClass:
					class = a.Value.AsString()
				case otelrpc.KeyBackoff:
					backoff = a.Value.AsFloat64()
				}
			}
			a := fmt.Sprintf("%d:%s", n, class)
			if backoff > 0 {
				a += fmt.Sprintf("+%.0fms", backoff*1000)
			}
			attempts = append(attempts, a)
		}
		line := fmt.Sprintf("%s: span %s %s trace=%s span=%s parent=%s status=%s",
			e.who, s.Name(), s.SpanKind(), s.SpanContext().TraceID().String()[:8], s.SpanContext().SpanID().String()[:8], parent, s.Status().Code)
		if len(attempts) > 0 {
			line += " attempts=[" + strings.Join(attempts, " ") + "]"
		}
		if _, err := fmt.Fprintln(e.w, line); err != nil {
			return err
		}
	}
	return nil
}

func (e *lineExporter) Shutdown(ctx context.Context) error { return nil }
