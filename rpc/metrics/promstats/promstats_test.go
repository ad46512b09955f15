package promstats_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/metrics/promstats"
	"github.com/semrpc/semrpc/semantics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type Calc struct{}

type Pair struct{ A, B int }

func (Calc) Div(p Pair, quo *int) error {
	if p.B == 0 {
		return errors.New("divide by zero")
	}
	*quo = p.A / p.B
	return nil
}

// pair starts a server for Calc and a client under policy p.
func pair(t *testing.T, p semantics.Policy) (*rpc.Server, *rpc.Client) {
	t.Helper()
	srv := rpc.NewServer()
	if err := srv.Register(Calc{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c, err := rpc.Dial(context.Background(), "tcp", l.Addr().String(), rpc.WithSemantics(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// calls makes two good calls, one application error and one unknown method.
func calls(t *testing.T, c *rpc.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var q int
	for range 2 {
		if err := c.Call(ctx, "Calc.Div", Pair{6, 3}, &q); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Call(ctx, "Calc.Div", Pair{1, 0}, &q); !errors.Is(err, rpc.ErrApplication) {
		t.Fatalf("Div by zero: %v", err)
	}
	if err := c.Call(ctx, "Calc.Nope", Pair{}, &q); !errors.Is(err, rpc.ErrUnknownMethod) {
		t.Fatalf("unknown method: %v", err)
	}
}

func TestServerCollectorExportsStats(t *testing.T) {
	srv, c := pair(t, semantics.AtMostOnce())
	calls(t, c)
	col := promstats.NewServerCollector(srv, prometheus.Labels{"server": "a"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	want := `
# HELP semrpc_server_call_errors_total Number of method executions that ended in an error, by method.
# TYPE semrpc_server_call_errors_total counter
semrpc_server_call_errors_total{method="Calc.Div",server="a"} 1
# HELP semrpc_server_rejected_total Number of requests refused before running (unknown method, bad arguments, shutting down, table refusals).
# TYPE semrpc_server_rejected_total counter
semrpc_server_rejected_total{server="a"} 1
# HELP semrpc_server_connections Number of open connections.
# TYPE semrpc_server_connections gauge
semrpc_server_connections{server="a"} 1
# HELP semrpc_server_table_sessions Number of live at-most-once sessions.
# TYPE semrpc_server_table_sessions gauge
semrpc_server_table_sessions{server="a"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"semrpc_server_call_errors_total", "semrpc_server_rejected_total", "semrpc_server_connections", "semrpc_server_table_sessions"); err != nil {
		t.Fatal(err)
	}
	families := gather(t, reg)
	if n := sampleCount(families, "semrpc_server_call_duration_seconds", "Calc.Div"); n != 3 {
		t.Errorf("executions of Calc.Div = %d, want 3", n)
	}
	if v := labelled(families, "semrpc_server_table_events_total", "event", "new"); v != 3 {
		t.Errorf("table events new = %v, want 3 (the three calls that ran)", v)
	}
	if v := labelled(families, "semrpc_server_table_events_total", "event", "session_opened"); v != 1 {
		t.Errorf("table events session_opened = %v, want 1", v)
	}
	if problems, err := testutil.CollectAndLint(col); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestClientCollectorExportsStats(t *testing.T) {
	_, c := pair(t, semantics.AtMostOnce())
	calls(t, c)
	col := promstats.NewClientCollector(c, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	// Five attempts: the session handshake (_semrpc.Open) and four calls.
	want := `
# HELP semrpc_client_attempts_total Number of attempts started, first attempts included.
# TYPE semrpc_client_attempts_total counter
semrpc_client_attempts_total 5
# HELP semrpc_client_retries_total Number of attempts started after a failed one.
# TYPE semrpc_client_retries_total counter
semrpc_client_retries_total 0
# HELP semrpc_client_sessions_opened_total Number of at-most-once sessions opened.
# TYPE semrpc_client_sessions_opened_total counter
semrpc_client_sessions_opened_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"semrpc_client_attempts_total", "semrpc_client_retries_total", "semrpc_client_sessions_opened_total"); err != nil {
		t.Fatal(err)
	}
	families := gather(t, reg)
	if n := sampleCount(families, "semrpc_client_call_duration_seconds", "Calc.Div"); n != 3 {
		t.Errorf("client calls of Calc.Div = %d, want 3", n)
	}
	if v := labelled(families, "semrpc_client_call_errors_total", "method", "Calc.Nope"); v != 1 {
		t.Errorf("client errors of Calc.Nope = %v, want 1", v)
	}
	if problems, err := testutil.CollectAndLint(col); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// Two servers' collectors live in one registry when their const labels
// differ.
func TestCollectorsOfTwoServersShareARegistry(t *testing.T) {
	a, _ := pair(t, semantics.NoRetry())
	b, _ := pair(t, semantics.NoRetry())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promstats.NewServerCollector(a, prometheus.Labels{"server": "a"}))
	if err := reg.Register(promstats.NewServerCollector(b, prometheus.Labels{"server": "b"})); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(promstats.NewServerCollector(b, prometheus.Labels{"server": "b"})); err == nil {
		t.Fatal("registering the same labels twice succeeded")
	}
	gather(t, reg)
}

func gather(t *testing.T, reg *prometheus.Registry) map[string][]*metricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*metricFamily{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			f := &metricFamily{labels: map[string]string{}}
			for _, lp := range m.GetLabel() {
				f.labels[lp.GetName()] = lp.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				f.value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				f.value = m.GetGauge().GetValue()
			case m.GetSummary() != nil:
				f.count = m.GetSummary().GetSampleCount()
				f.value = m.GetSummary().GetSampleSum()
			}
			out[mf.GetName()] = append(out[mf.GetName()], f)
		}
	}
	return out
}

// metricFamily is one sample, flattened.
type metricFamily struct {
	labels map[string]string
	value  float64
	count  uint64
}

func labelled(fs map[string][]*metricFamily, name, label, value string) float64 {
	for _, f := range fs[name] {
		if f.labels[label] == value {
			return f.value
		}
	}
	return -1
}

func sampleCount(fs map[string][]*metricFamily, name, method string) uint64 {
	for _, f := range fs[name] {
		if f.labels["method"] == method {
			return f.count
		}
	}
	return 0
}

func TestClientCollectorExportsEachServerOfACluster(t *testing.T) {
	_, c := pair(t, semantics.NoRetry()) // not a cluster client
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upAddr := l.Addr().String()
	s2 := rpc.NewServer()
	if err := s2.Register(Calc{}); err != nil {
		t.Fatal(err)
	}
	go s2.Serve(l)
	t.Cleanup(func() { s2.Close() })
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := gone.Addr().String()
	gone.Close()
	cc, err := rpc.DialCluster(context.Background(), "tcp", []string{upAddr, downAddr},
		rpc.WithEagerDial(), rpc.WithRedialBackoff(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	col := promstats.NewClientCollector(cc, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	families := gather(t, reg)
	if v := labelled(families, "semrpc_client_server_in_rotation", "addr", upAddr); v != 1 {
		t.Errorf("in_rotation of %s = %v, want 1", upAddr, v)
	}
	if v := labelled(families, "semrpc_client_server_in_rotation", "addr", downAddr); v != 0 {
		t.Errorf("in_rotation of %s = %v, want 0", downAddr, v)
	}
	if v := labelled(families, "semrpc_client_server_outstanding", "addr", upAddr); v != 0 {
		t.Errorf("outstanding on %s = %v, want 0", upAddr, v)
	}
	if problems, err := testutil.CollectAndLint(col); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	// A plain client's collector exports no per-server series.
	if fs := gather(t, registry(t, promstats.NewClientCollector(c, nil))); len(fs["semrpc_client_server_in_rotation"]) != 0 {
		t.Errorf("a Dial client exports in_rotation: %v", fs["semrpc_client_server_in_rotation"])
	}
}

func registry(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return reg
}
