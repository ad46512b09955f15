package rpc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// testCA signs certificates for TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "semrpc test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for name: a server certificate for
// 127.0.0.1 if server, else a client certificate.
func (ca *testCA) issue(t *testing.T, name string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startTLSNode serves a Node over TLS with cfg on a loopback port.
func startTLSNode(t *testing.T, name string, cfg *tls.Config) *clusterNode {
	t.Helper()
	l, err := ListenTLS("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &clusterNode{t: t, svc: &Node{name: name, entered: make(chan struct{}, 16), release: make(chan struct{})}, addr: l.Addr().String()}
	n.srv = NewServer(WithLogger(discardLogger()))
	if err := n.srv.RegisterName("Node", n.svc); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan error, 1)
	go func() { n.done <- n.srv.Serve(l) }()
	t.Cleanup(n.stop)
	return n
}

func TestWithTLSCallsReachTLSServers(t *testing.T) {
	ca := newTestCA(t)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "server", true)}}
	cliCfg := &tls.Config{RootCAs: ca.pool} // ServerName from the address dialled
	a, b := startTLSNode(t, "a", srvCfg), startTLSNode(t, "b", srvCfg)

	tests := []struct {
		name string
		dial func() (*Client, error)
		want map[string]bool
	}{
		{"Dial", func() (*Client, error) {
			return Dial(ctxT(t), "tcp", a.addr, WithTLS(cliCfg))
		}, map[string]bool{"a": true}},
		{"DialCluster", func() (*Client, error) {
			return DialCluster(ctxT(t), "tcp", []string{a.addr, b.addr}, WithTLS(cliCfg))
		}, map[string]bool{"a": true, "b": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := map[string]bool{}
			for i := range 4 {
				var who string
				if err := c.Call(ctxT(t), "Node.Name", i, &who, WithSemantics(semantics.AtLeastOnce())); err != nil {
					t.Fatal(err)
				}
				got[who] = true
			}
			if len(got) != len(tt.want) {
				t.Fatalf("calls ran on %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWithTLSRefusedHandshakeFailsNotExecutedWithoutRetry(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	srv := startTLSNode(t, "s", &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "server", true)}})
	mtls := startTLSNode(t, "m", &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "server", true)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.pool,
	})
	tests := []struct {
		name string
		addr string
		cfg  *tls.Config
	}{
		{"server certificate from an unknown CA", srv.addr, &tls.Config{RootCAs: otherCA.pool}},
		{"server certificate for another name", srv.addr, &tls.Config{RootCAs: ca.pool, ServerName: "example.com"}},
		{"mutual TLS without a client certificate", mtls.addr, &tls.Config{RootCAs: ca.pool}},
		{"mutual TLS with a certificate from another CA", mtls.addr, &tls.Config{RootCAs: ca.pool,
			Certificates: []tls.Certificate{otherCA.issue(t, "mallory", false)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(ctxT(t), "tcp", tt.addr, WithTLS(tt.cfg), WithSemantics(semantics.AtLeastOnce()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var who string
			err = c.Call(ctxT(t), "Node.Name", 0, &who)
			if !errors.Is(err, ErrNotExecuted) {
				t.Fatalf("call: %v, want ErrNotExecuted", err)
			}
			// The client may have written its request before the server's
			// alert arrived (TLS 1.3 verifies the client's certificate after
			// the client's handshake ends): that attempt fails as not sent
			// and is retried for free; the alert then stops the call.
			if !semantics.IsPermanent(err) {
				t.Fatalf("call: %v, want it stopped by a permanent error", err)
			}
		})
	}
}

func TestMutualTLSAcceptsClientWithTrustedCertificate(t *testing.T) {
	ca := newTestCA(t)
	n := startTLSNode(t, "m", &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "server", true)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.pool,
	})
	c, err := Dial(ctxT(t), "tcp", n.addr, WithTLS(&tls.Config{RootCAs: ca.pool,
		Certificates: []tls.Certificate{ca.issue(t, "alice", false)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var who string
	if err := c.Call(ctxT(t), "Node.Name", 0, &who); err != nil || who != "m" {
		t.Fatalf("call: %q %v", who, err)
	}
}

func TestListenTLSRefusesConfigWithoutCertificate(t *testing.T) {
	l, err := ListenTLS("tcp", "127.0.0.1:0", &tls.Config{})
	if err == nil {
		l.Close()
		t.Fatal("ListenTLS accepted a config with no certificate")
	}
}

func TestDialClusterTLSRefusedServerLeavesRotation(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	trusted := startTLSNode(t, "trusted", &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "server", true)}})
	untrusted := startTLSNode(t, "untrusted", &tls.Config{Certificates: []tls.Certificate{otherCA.issue(t, "server", true)}})
	cfg := WithTLS(&tls.Config{RootCAs: ca.pool})

	c := dialCluster(t, []*clusterNode{untrusted, trusted}, cfg, WithSemantics(semantics.AtLeastOnce()))
	for i := range 4 {
		var who string
		if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil || who != "trusted" {
			t.Fatalf("call %d: %q %v; want it run by the trusted server", i, who, err)
		}
	}

	c = dialCluster(t, []*clusterNode{untrusted}, cfg, WithSemantics(semantics.AtLeastOnce()))
	var who string
	err := c.Call(ctxT(t), "Node.Name", 0, &who)
	if !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("call with every server refused: %v, want ErrNotExecuted", err)
	}
	if st := c.Stats().Run; st.Retries != 0 {
		t.Fatalf("%d retries after every server failed verification, want none: %v", st.Retries, err)
	}
}

func TestDialClusterServerOutOfRotationIsNotDialledAgainUntilItsProbe(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	trusted := startTLSNode(t, "trusted", &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "server", true)}})
	var hellos atomic.Int64
	untrustedCfg := &tls.Config{Certificates: []tls.Certificate{otherCA.issue(t, "server", true)}}
	untrustedCfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		hellos.Add(1) // one per connection the client tries
		return nil, nil
	}
	untrusted := startTLSNode(t, "untrusted", untrustedCfg)

	c := dialCluster(t, []*clusterNode{untrusted, trusted}, WithTLS(&tls.Config{RootCAs: ca.pool}),
		WithRedialBackoff(time.Hour, time.Hour))
	for i := range 20 {
		var who string
		if err := c.Call(ctxT(t), "Node.Name", i, &who); err != nil || who != "trusted" {
			t.Fatalf("call %d: %q %v", i, who, err)
		}
	}
	if n := hellos.Load(); n != 1 {
		t.Fatalf("the refused server saw %d handshakes over 20 calls, want 1: it must leave the rotation until its probe", n)
	}
}
