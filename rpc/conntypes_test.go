package rpc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// selfSigned returns a server config with a fresh certificate for
// 127.0.0.1 and a client config that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "semrpc test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

// Every scenario below runs over each kind of connection.
func TestConnectionTypes(t *testing.T) {
	type setup func(t *testing.T, srv *Server) Transport
	kinds := []struct {
		name  string
		setup setup
	}{
		{"tcp", func(t *testing.T, srv *Server) Transport {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(l)
			return NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", l.Addr().String())
			})
		}},
		{"tls", func(t *testing.T, srv *Server) Transport {
			scfg, ccfg := selfSigned(t)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(tls.NewListener(l, scfg))
			return NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
				d := tls.Dialer{Config: ccfg}
				return d.DialContext(ctx, "tcp", l.Addr().String())
			})
		}},
		{"pipe", func(t *testing.T, srv *Server) Transport {
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			return NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
				c1, c2 := net.Pipe()
				wg.Add(1)
				go func() {
					defer wg.Done()
					srv.ServeConn(c2)
				}()
				return c1, nil
			})
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			srv := NewServer(WithLogger(discardLogger()))
			a := &Arith{block: make(chan struct{})}
			srv.Register(a)
			tr := k.setup(t, srv)
			c := NewClient(tr)
			defer func() {
				c.Close()
				close(a.block)
				srv.Shutdown(context.Background())
			}()
			ctx := ctxT(t)

			var r int
			if err := c.Call(ctx, "Arith.Add", Args{2, 40}, &r); err != nil || r != 42 {
				t.Fatalf("Add: %d, %v", r, err)
			}
			var q Quotient
			if err := c.Call(ctx, "Arith.Divide", Args{1, 0}, &q); !errors.Is(err, ErrApplication) {
				t.Fatalf("Divide by zero: %v", err)
			}
			if err := c.Call(ctx, "Arith.Mul", &Args{6, 7}, &r, WithSemantics(semantics.AtMostOnce())); err != nil || r != 42 {
				t.Fatalf("at-most-once Mul: %d, %v", r, err)
			}
			short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			err := c.Call(short, "Arith.Slow", Args{}, &r)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrMaybeExecuted) {
				t.Fatalf("Slow with deadline: %v", err)
			}
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					var r int
					if err := c.Call(ctx, "Arith.Add", Args{g, g}, &r); err != nil || r != 2*g {
						t.Errorf("concurrent Add: %d, %v", r, err)
					}
				}(g)
			}
			wg.Wait()
		})
	}
}
