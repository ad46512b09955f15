package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
)

// Whoami answers with the common name of the caller's verified TLS
// certificate.
type Whoami struct{}

func (Whoami) Name(ctx context.Context, _ int, reply *string) error {
	p, ok := PeerFromContext(ctx)
	if !ok || p.TLS == nil || len(p.TLS.VerifiedChains) == 0 {
		return errors.New("no verified client certificate")
	}
	*reply = p.TLS.VerifiedChains[0][0].Subject.CommonName
	return nil
}

func TestMutualTLSPeerCertificateReachesTheMethod(t *testing.T) {
	ca := newTestCA(t)
	l, err := ListenTLS("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "server", true)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(WithLogger(discardLogger()))
	if err := srv.Register(Whoami{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer func() { srv.Close(); <-done }()

	for _, dial := range []func(opt Option) (*Client, error){
		func(opt Option) (*Client, error) { return Dial(ctxT(t), "tcp", l.Addr().String(), opt) },
		func(opt Option) (*Client, error) {
			return DialCluster(ctxT(t), "tcp", []string{l.Addr().String()}, opt)
		},
	} {
		c, err := dial(WithTLS(&tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{ca.issue(t, "alice", false)}}))
		if err != nil {
			t.Fatal(err)
		}
		var who string
		err = c.Call(ctxT(t), "Whoami.Name", 0, &who)
		c.Close()
		if err != nil || who != "alice" {
			t.Fatalf("method saw caller %q (%v), want alice", who, err)
		}
	}
}
