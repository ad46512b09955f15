package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"log"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/rpc/metrics"
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

func start(p semantics.Policy) (*rpc.Server, *rpc.Client, func()) {
	srv := rpc.NewServer()
	if err := srv.Register(Calc{}); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	c, err := rpc.Dial(context.Background(), "tcp", l.Addr().String(), rpc.WithSemantics(p))
	if err != nil {
		log.Fatal(err)
	}
	return srv, c, func() {
		c.Close()
		srv.Close()
	}
}

// The Vars read the counters when read, as JSON.
func TestVarsShowCountersAsJSON(t *testing.T) {
	srv, c, stop := start(semantics.AtMostOnce())
	defer stop()
	sv, cv := metrics.ServerVar(srv), metrics.ClientVar(c)
	var before metrics.Server
	if err := json.Unmarshal([]byte(sv.String()), &before); err != nil {
		t.Fatal(err)
	}
	if len(before.Methods) != 1 || before.Methods["Calc.Div"].Calls != 0 {
		t.Fatalf("before any call: %+v", before)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var q int
	if err := c.Call(ctx, "Calc.Div", Pair{6, 3}, &q); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, "Calc.Div", Pair{1, 0}, &q); !errors.Is(err, rpc.ErrApplication) {
		t.Fatal(err)
	}
	var s metrics.Server
	if err := json.Unmarshal([]byte(sv.String()), &s); err != nil {
		t.Fatal(err)
	}
	m := s.Methods["Calc.Div"]
	if m.Calls != 2 || m.Errors != 1 || m.SecondsTotal <= 0 || m.MaxSeconds <= 0 || m.MaxSeconds > m.SecondsTotal {
		t.Fatalf("server Calc.Div = %+v", m)
	}
	if s.Connections != 1 || s.Table.New != 2 || s.Table.Opened != 1 {
		t.Fatalf("server = %+v", s)
	}
	var cl metrics.Client
	if err := json.Unmarshal([]byte(cv.String()), &cl); err != nil {
		t.Fatal(err)
	}
	if cm := cl.Methods["Calc.Div"]; cm.Calls != 2 || cm.Errors != 1 {
		t.Fatalf("client Calc.Div = %+v", cm)
	}
	if cl.SessionsOpened != 1 || cl.Run.Attempts != 3 {
		t.Fatalf("client = %+v, want one session and three attempts (handshake and two calls)", cl)
	}
}

func ExampleServerVar() {
	srv, c, stop := start(semantics.NoRetry())
	defer stop()
	if expvar.Get("semrpc_example_server") == nil { // Publish panics on a name taken
		expvar.Publish("semrpc_example_server", metrics.ServerVar(srv))
	}

	var q int
	if err := c.Call(context.Background(), "Calc.Div", Pair{8, 2}, &q); err != nil {
		log.Fatal(err)
	}
	var s metrics.Server
	if err := json.Unmarshal([]byte(expvar.Get("semrpc_example_server").String()), &s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Methods["Calc.Div"].Calls, s.Connections)
	// Output: 1 1
}

func ExampleClientVar() {
	_, c, stop := start(semantics.NoRetry())
	defer stop()
	v := metrics.ClientVar(c)
	var q int
	c.Call(context.Background(), "Calc.Div", Pair{1, 0}, &q)
	var s metrics.Client
	if err := json.Unmarshal([]byte(v.String()), &s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Methods["Calc.Div"].Calls, s.Methods["Calc.Div"].Errors, s.Run.Attempts)
	// Output: 1 1 1
}

// startCluster serves Calc on one loopback port, takes another that
// refuses connections, and dials a cluster client over both, eagerly, so
// that the refusing one is out of rotation from the start.
func startCluster(t *testing.T) (up, down string, c *rpc.Client) {
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
	up = l.Addr().String()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down = gone.Addr().String()
	gone.Close()
	c, err = rpc.DialCluster(context.Background(), "tcp", []string{up, down},
		rpc.WithEagerDial(), rpc.WithRedialBackoff(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return up, down, c
}

func TestClientVarShowsEachServerOfACluster(t *testing.T) {
	up, down, c := startCluster(t)
	var got metrics.Client
	if err := json.Unmarshal([]byte(metrics.ClientVar(c).String()), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Servers) != 2 {
		t.Fatalf("servers %+v, want both of the cluster's", got.Servers)
	}
	if s := got.Servers[0]; s.Addr != up || !s.InRotation || s.LastError != "" {
		t.Errorf("server up: %+v, want %s in rotation", s, up)
	}
	if s := got.Servers[1]; s.Addr != down || s.InRotation || s.LastError == "" {
		t.Errorf("server down: %+v, want %s out of rotation with its dial error", s, down)
	}
	_, single, stop := start(semantics.NoRetry())
	defer stop()
	if s := metrics.ClientSnapshot(single).Servers; s != nil {
		t.Errorf("a client made by Dial shows servers %+v, want none", s)
	}
}
