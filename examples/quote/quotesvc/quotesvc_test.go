package quotesvc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.uber.org/goleak"

	"github.com/semrpc/semrpc/examples/quote/quotesvc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/otelrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer shared by several exporters.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var tokens = map[string]string{"t-acme": "acme", "t-zeta": "zeta"}

// cluster starts n servers over mutual TLS with certificates in a fresh
// directory; their spans go to spans.
func cluster(t *testing.T, n int, spans *syncBuffer) (dir string, addrs []string) {
	t.Helper()
	dir = t.TempDir()
	if err := quotesvc.Certs(dir, "test client", time.Hour); err != nil {
		t.Fatal(err)
	}
	cfg, err := quotesvc.ServerTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("s%d", i+1)
		tp := quotesvc.NewTracing(spans, "server "+name)
		srv, err := quotesvc.NewServer(name, tokens, otelrpc.WithTracerProvider(tp), otelrpc.WithPropagators(propagation.TraceContext{}))
		if err != nil {
			t.Fatal(err)
		}
		l, err := rpc.ListenTLS("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Serve(l)
		}()
		t.Cleanup(func() {
			srv.Shutdown(context.Background())
			<-done
			tp.Shutdown(context.Background())
		})
		addrs = append(addrs, l.Addr().String())
	}
	return dir, addrs
}

func client(t *testing.T, dir string, addrs []string, token string, anonymous bool, spans *syncBuffer) *rpc.Client {
	t.Helper()
	cfg, err := quotesvc.ClientTLS(dir, anonymous)
	if err != nil {
		t.Fatal(err)
	}
	tp := quotesvc.NewTracing(spans, "client")
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := quotesvc.Dial(ctx, addrs, cfg, token, otelrpc.WithTracerProvider(tp), otelrpc.WithPropagators(propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestQuotesSpreadOverServersWithIdentityTenantAndTraces(t *testing.T) {
	spans := &syncBuffer{}
	dir, addrs := cluster(t, 3, spans)
	c := client(t, dir, addrs, "t-acme", false, spans)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	servers := map[string]int{}
	for i := range 6 {
		q, servedBy, err := quotesvc.Price(ctx, c, "cheese", 2)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if q.Total != 2250 || q.Discount != 10 || q.Tenant != "acme" || q.Caller != "test client" || servedBy != q.Server {
			t.Fatalf("quote %+v served by %q; want 2250 cents for acme (10%% off), caller 'test client', header naming the server", q, servedBy)
		}
		servers[q.Server]++
	}
	if len(servers) < 2 {
		t.Errorf("six calls went to %v; want them spread over several servers", servers)
	}

	// Every client span has a server span as its child, in the same trace.
	out := spans.String()
	clientRe := regexp.MustCompile(`client: span Quote/Price client trace=(\w+) span=(\w+) parent=- status=Unset attempts=\[1:ok\]`)
	clientSpans := clientRe.FindAllStringSubmatch(out, -1)
	if len(clientSpans) != 6 {
		t.Fatalf("%d client spans, want 6:\n%s", len(clientSpans), out)
	}
	for _, m := range clientSpans {
		child := fmt.Sprintf("span Quote/Price server trace=%s span=", m[1])
		if !strings.Contains(out, child) || !strings.Contains(out, "parent="+m[2]) {
			t.Errorf("no server span child of client span %s in trace %s:\n%s", m[2], m[1], out)
		}
	}
}

func TestRefusedCallsDidNotRun(t *testing.T) {
	spans := &syncBuffer{}
	dir, addrs := cluster(t, 2, spans)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name      string
		token     string
		anonymous bool
		want      error
	}{
		{name: "unknown token", token: "nope", want: rpc.ErrRejected},
		{name: "no client certificate", token: "t-acme", anonymous: true, want: rpc.ErrNotExecuted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client(t, dir, addrs, tt.token, tt.anonymous, spans)
			_, _, err := quotesvc.Price(ctx, c, "apple", 1)
			if !errors.Is(err, tt.want) || !errors.Is(err, rpc.ErrNotExecuted) {
				t.Fatalf("err = %v, want %v and not executed", err, tt.want)
			}
		})
	}
	// A known token of another tenant gets no discount; an unknown item is
	// the method's own error.
	c := client(t, dir, addrs, "t-zeta", false, spans)
	if q, _, err := quotesvc.Price(ctx, c, "apple", 3); err != nil || q.Total != 150 || q.Tenant != "zeta" {
		t.Fatalf("zeta: %+v, %v", q, err)
	}
	if _, _, err := quotesvc.Price(ctx, c, "caviar", 1); !errors.Is(err, rpc.ErrApplication) || !strings.Contains(err.Error(), "unknown item") {
		t.Fatalf("unknown item: %v", err)
	}
}

// A tenant named by the caller is replaced by its token's.
func TestTenantComesFromTheToken(t *testing.T) {
	dir, addrs := cluster(t, 1, &syncBuffer{})
	c := client(t, dir, addrs, "t-zeta", false, &syncBuffer{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = rpc.AppendToOutgoingContext(ctx, quotesvc.KeyTenant, "acme")
	q, _, err := quotesvc.Price(ctx, c, "bread", 1)
	if err != nil || q.Tenant != "zeta" || q.Discount != 0 {
		t.Fatalf("quote %+v, %v; want tenant zeta without discount", q, err)
	}
}

func TestCertsErrors(t *testing.T) {
	if _, err := quotesvc.ServerTLS(t.TempDir()); err == nil || !strings.Contains(err.Error(), "certs command") {
		t.Fatalf("ServerTLS of an empty directory: %v", err)
	}
	if _, err := quotesvc.ClientTLS(t.TempDir(), false); err == nil {
		t.Fatal("ClientTLS of an empty directory succeeded")
	}
	dir := t.TempDir()
	if err := quotesvc.Certs(dir, "c", time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{quotesvc.ServerKeyFile, quotesvc.ClientKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
	}
}
