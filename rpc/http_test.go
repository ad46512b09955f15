package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	stdrpc "net/rpc"
	"strings"
	"testing"
)

// startHTTP serves s at DefaultRPCPath and its debug page at
// DefaultDebugPath on a loopback HTTP server.
func startHTTP(t *testing.T, s *Server) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(DefaultRPCPath, s)
	mux.Handle(DefaultDebugPath, s.DebugHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		s.Close() // the hijacked connections are the RPC server's
		hs.Close()
	})
	return hs.Listener.Addr().String()
}

func newArithServer(t *testing.T, opts ...Option) (*Server, *Arith) {
	t.Helper()
	s := NewServer(append([]Option{WithLogger(discardLogger())}, opts...)...)
	a := &Arith{block: make(chan struct{})}
	if err := s.Register(a); err != nil {
		t.Fatal(err)
	}
	return s, a
}

func TestDialHTTPCallsOverCONNECT(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
	}{
		{"plain", nil},
		{"at-most-once", []Option{WithSemantics(atMostOnce())}},
		{"eager", []Option{WithEagerDial()}},
	}
	s, _ := newArithServer(t)
	addr := startHTTP(t, s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DialHTTP(ctxT(t), "tcp", addr, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var sum int
			if err := c.Call(ctxT(t), "Arith.Add", Args{2, 3}, &sum); err != nil || sum != 5 {
				t.Fatalf("Add = %d, %v", sum, err)
			}
		})
	}
}

func TestStockDialHTTPReachesOurServer(t *testing.T) {
	s, _ := newArithServer(t)
	addr := startHTTP(t, s)
	c, err := stdrpc.DialHTTP("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sum int
	if err := c.Call("Arith.Add", Args{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("Add = %d, %v", sum, err)
	}
}

func TestDialHTTPReachesStockServer(t *testing.T) {
	srv := stdrpc.NewServer()
	if err := srv.Register(new(StdArith)); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(DefaultRPCPath, srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	c, err := DialHTTP(ctxT(t), "tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sum int
	if err := c.Call(ctxT(t), "StdArith.Add", Args{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("Add = %d, %v", sum, err)
	}
	// A stock net/rpc server keeps hijacked connections open until its
	// client leaves.
	c.Close()
}

func TestDialHTTPWrongPathIsNotExecutedAndPermanent(t *testing.T) {
	s, _ := newArithServer(t)
	addr := startHTTP(t, s)
	c, err := DialHTTPPath(ctxT(t), "tcp", addr, "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Call(ctxT(t), "Arith.Add", Args{2, 3}, new(int), WithSemantics(atMostOnce()))
	if !errors.Is(err, ErrNotExecuted) || !errors.Is(err, errNotRPCOverHTTP) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("call through a path that is not RPC: %v", err)
	}
}

func TestServeHTTPRefusesOtherMethods(t *testing.T) {
	s, _ := newArithServer(t)
	addr := startHTTP(t, s)
	resp, err := http.Get("http://" + addr + DefaultRPCPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodConnect {
		t.Fatalf("GET on the RPC path: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
}

func TestDebugPageListsMethodsAndCounts(t *testing.T) {
	s, _ := newArithServer(t)
	addr := startHTTP(t, s)
	c, err := DialHTTP(ctxT(t), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if err := c.Call(ctxT(t), "Arith.Add", Args{2, 3}, new(int)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + addr + DefaultDebugPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"status SERVING", "<td>Arith.Add</td><td>rpc.Args</td><td>*int</td><td>3</td><td>0</td>", "<td>Arith.Divide</td>"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("debug page lacks %q:\n%s", want, body)
		}
	}
}

// A JSON-RPC client can use the CONNECT path too.
func TestServeHTTPSniffsJSON(t *testing.T) {
	s, _ := newArithServer(t)
	addr := startHTTP(t, s)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := httpConnect(context.Background(), nc, DefaultRPCPath, DefaultRetryTimeout); err != nil {
		t.Fatal(err)
	}
	c := stdrpc.NewClientWithCodec(jsonClientCodec(nc))
	defer c.Close()
	var sum int
	if err := c.Call("Arith.Add", Args{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("Add = %d, %v", sum, err)
	}
}

// startHTTPS serves s at DefaultRPCPath on a loopback HTTPS server whose
// certificate ca signs.
func startHTTPS(t *testing.T, s *Server, ca *testCA) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(DefaultRPCPath, s)
	hs := httptest.NewUnstartedServer(mux)
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "server", true)}}
	hs.StartTLS()
	t.Cleanup(func() {
		s.Close()
		hs.Close()
	})
	return hs.Listener.Addr().String()
}

func TestDialHTTPWithTLSConnectsOverTLS(t *testing.T) {
	ca := newTestCA(t)
	s, _ := newArithServer(t)
	addr := startHTTPS(t, s, ca)
	c, err := DialHTTP(ctxT(t), "tcp", addr, WithTLS(&tls.Config{RootCAs: ca.pool}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sum int
	if err := c.Call(ctxT(t), "Arith.Add", Args{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("call over HTTPS: %d %v; WithTLS must make DialHTTP speak TLS", sum, err)
	}
}

func TestDialHTTPWithoutTLSOnHTTPSServerSuggestsWithTLS(t *testing.T) {
	s, _ := newArithServer(t)
	addr := startHTTPS(t, s, newTestCA(t))
	c, err := DialHTTP(ctxT(t), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sum int
	err = c.Call(ctxT(t), "Arith.Add", Args{2, 3}, &sum)
	if !errors.Is(err, ErrNotExecuted) || !strings.Contains(err.Error(), "if it serves HTTPS, dial with WithTLS") {
		t.Fatalf("call: %v; want not executed, suggesting WithTLS", err)
	}
}
