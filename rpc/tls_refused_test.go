package rpc

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/semrpc/semrpc/semantics"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// A mutual-TLS server that refuses a client without a certificate does so,
// under TLS 1.3, after the client's half of the handshake has ended: its
// alert arrives on the client's first read (under TLS 1.2 it ends the
// handshake). That is a refusal, not a lost connection: the call ends at
// once under every policy, not executed and permanent, on one connection,
// and its text says the server refused the connection.
func TestTLSClientWithoutCertificateIsRefusedNotLost(t *testing.T) {
	ca := newTestCA(t)
	versions := []struct {
		name string
		max  uint16
	}{
		{"TLS1.3", tls.VersionTLS13},
		{"TLS1.2", tls.VersionTLS12},
	}
	policies := []struct {
		name string
		p    semantics.Policy
	}{
		{"NoRetry", semantics.NoRetry()},
		{"AtLeastOnce", semantics.AtLeastOnce()},
		{"AtMostOnce", semantics.AtMostOnce()},
		{"ExactlyOnce", semantics.ExactlyOnce()},
	}
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cl := &countingListener{Listener: raw}
			svc := &Node{name: "m", entered: make(chan struct{}, 16), release: make(chan struct{})}
			srv := NewServer(WithLogger(discardLogger()))
			if err := srv.RegisterName("Node", svc); err != nil {
				t.Fatal(err)
			}
			go srv.Serve(tls.NewListener(cl, &tls.Config{
				Certificates: []tls.Certificate{ca.issue(t, "server", true)},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    ca.pool,
				MaxVersion:   v.max,
			}))
			t.Cleanup(func() { srv.Close() })
			for _, tt := range policies {
				t.Run(tt.name, func(t *testing.T) {
					for i := range 10 {
						before := cl.accepted.Load()
						c, err := Dial(ctxT(t), "tcp", raw.Addr().String(), WithTLS(&tls.Config{RootCAs: ca.pool}), WithSemantics(tt.p))
						if err != nil {
							t.Fatal(err)
						}
						var who string
						err = c.Call(ctxT(t), "Node.Name", 0, &who)
						tried := c.Stats().Run.Attempts
						c.Close()
						if !errors.Is(err, ErrNotExecuted) || !semantics.IsPermanent(err) {
							t.Fatalf("call %d: %v, want not executed and permanent", i, err)
						}
						if msg := err.Error(); !strings.Contains(msg, "refused the TLS connection") || strings.Contains(msg, "connection lost") {
							t.Fatalf("call %d: %q, want it to say the server refused the TLS connection, not that it was lost", i, msg)
						}
						if errors.Is(err, ErrConnLost) {
							t.Fatalf("call %d: %v matches ErrConnLost", i, err)
						}
						if tried != 1 {
							t.Fatalf("call %d: %d attempts, want 1", i, tried)
						}
						if n := cl.accepted.Load() - before; n > 2 {
							t.Fatalf("call %d: %d connections, want at most 2", i, n)
						}
					}
					if n := svc.calls.Load(); n != 0 {
						t.Fatalf("the method ran %d times", n)
					}
				})
			}
		})
	}
}
