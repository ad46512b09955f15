package rpc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"time"

	"github.com/semrpc/semrpc/rpc"
)

// Replica answers with its name, so that a caller sees which server ran
// its call.
type Replica struct{ name string }

func (r *Replica) Name(_ struct{}, reply *string) error {
	*reply = r.name
	return nil
}

// serveReplica serves a Replica on l.
func serveReplica(name string, l net.Listener) (stop func()) {
	srv := rpc.NewServer(rpc.WithLogger(log.New(io.Discard, "", 0))) // the refused client below is logged
	if err := srv.Register(&Replica{name: name}); err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() {
		srv.Serve(l)
		close(done)
	}()
	return func() {
		srv.Close()
		<-done
	}
}

func listenLoopback() net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	return l
}

// A client of several servers spreads even one caller's sequential calls
// over them; a server that refuses connections leaves the rotation, and
// calls that could not be sent to it go to another server.
func ExampleDialCluster() {
	la, lb, lc := listenLoopback(), listenLoopback(), listenLoopback()
	stopA := serveReplica("a", la)
	defer stopA()
	stopB := serveReplica("b", lb)
	defer stopB()
	down := lc.Addr().String()
	lc.Close() // a server that is down: it does not fail DialCluster

	ctx := context.Background()
	c, err := rpc.DialCluster(ctx, "tcp", []string{la.Addr().String(), lb.Addr().String(), down})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	ran := map[string]bool{}
	for range 6 {
		var who string
		if err := c.Call(ctx, "Replica.Name", struct{}{}, &who); err != nil {
			panic(err)
		}
		ran[who] = true
	}
	fmt.Println(ran)
	// Output: map[a:true b:true]
}

// WithBalancer chooses how calls are spread: RoundRobin takes the servers
// in turn, whatever their load.
func ExampleWithBalancer() {
	la, lb := listenLoopback(), listenLoopback()
	stopA := serveReplica("a", la)
	defer stopA()
	stopB := serveReplica("b", lb)
	defer stopB()

	ctx := context.Background()
	c, err := rpc.DialCluster(ctx, "tcp", []string{la.Addr().String(), lb.Addr().String()},
		rpc.WithBalancer(rpc.RoundRobin))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	var prev string
	for range 4 {
		var who string
		if err := c.Call(ctx, "Replica.Name", struct{}{}, &who); err != nil {
			panic(err)
		}
		fmt.Println(who != prev) // never the same server twice in a row
		prev = who
	}
	// Output:
	// true
	// true
	// true
	// true
}

// exampleCertificate returns a certificate for 127.0.0.1, signed by
// itself, and a pool that trusts it. Real servers load theirs with
// tls.LoadX509KeyPair.
func exampleCertificate() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// A TLS server is a Server serving a TLS listener; its clients dial with
// WithTLS. For mutual TLS, the server's config also sets ClientAuth to
// tls.RequireAndVerifyClientCert and ClientCAs, and the client's config
// its Certificates.
func ExampleWithTLS() {
	cert, roots := exampleCertificate()
	l, err := rpc.ListenTLS("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		panic(err)
	}
	stop := serveReplica("secure", l)
	defer stop()

	ctx := context.Background()
	c, err := rpc.Dial(ctx, "tcp", l.Addr().String(), rpc.WithTLS(&tls.Config{RootCAs: roots}))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	var who string
	if err := c.Call(ctx, "Replica.Name", struct{}{}, &who); err != nil {
		panic(err)
	}
	fmt.Println(who)

	// A client that does not trust the server's certificate fails at once,
	// not executed, and no policy retries it.
	untrusting, err := rpc.Dial(ctx, "tcp", l.Addr().String(), rpc.WithTLS(&tls.Config{}))
	if err != nil {
		panic(err)
	}
	defer untrusting.Close()
	err = untrusting.Call(ctx, "Replica.Name", struct{}{}, &who)
	fmt.Println(errors.Is(err, rpc.ErrNotExecuted))
	// Output:
	// secure
	// true
}

// exampleCA returns a certificate authority's certificate, its key, and a
// pool that trusts it; exampleIssue signs a certificate with it.
func exampleCA() (*x509.Certificate, *ecdsa.PrivateKey, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return cert, key, pool
}

func exampleIssue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Mutual TLS: the server's listener requires a client certificate signed by
// its CA. A client without one is refused before anything runs.
func ExampleListenTLS() {
	ca, caKey, pool := exampleCA()
	l, err := rpc.ListenTLS("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{exampleIssue(ca, caKey, "server", x509.ExtKeyUsageServerAuth)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		panic(err)
	}
	stop := serveReplica("mtls", l)
	defer stop()

	ctx := context.Background()
	for _, certs := range [][]tls.Certificate{
		{exampleIssue(ca, caKey, "alice", x509.ExtKeyUsageClientAuth)},
		nil, // no client certificate
	} {
		c, err := rpc.Dial(ctx, "tcp", l.Addr().String(), rpc.WithTLS(&tls.Config{RootCAs: pool, Certificates: certs}))
		if err != nil {
			panic(err)
		}
		var who string
		err = c.Call(ctx, "Replica.Name", struct{}{}, &who)
		fmt.Printf("reply %q, not executed: %v\n", who, errors.Is(err, rpc.ErrNotExecuted))
		c.Close()
	}
	// Output:
	// reply "mtls", not executed: false
	// reply "", not executed: true
}

// Servers tells which servers of a cluster client are in rotation.
func ExampleClient_Servers() {
	la, lb := listenLoopback(), listenLoopback()
	stop := serveReplica("a", la)
	defer stop()
	down := lb.Addr().String()
	lb.Close()

	ctx := context.Background()
	c, err := rpc.DialCluster(ctx, "tcp", []string{la.Addr().String(), down},
		rpc.WithRedialBackoff(time.Minute, time.Minute))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for range 2 { // one of them finds the second server refusing
		var who string
		if err := c.Call(ctx, "Replica.Name", struct{}{}, &who); err != nil {
			panic(err)
		}
	}
	for i, s := range c.Servers() {
		fmt.Println(i, s.InRotation, s.LastError != nil)
	}
	// Output:
	// 0 true false
	// 1 false true
}
