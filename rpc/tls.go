package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// WithTLS makes Dial and DialCluster connect over TLS with cfg, which must
// not be modified afterwards. A cfg without ServerName verifies the
// server's certificate against the host of the address dialled. A
// certificate the client cannot verify, or a server that refuses the
// client's certificate, fails the call as not executed, and the error is
// permanent: the call ends there under every policy. So does a server
// that does not listen with TLS, if it is a semrpc server with its JSON
// codec on (the default): it refuses the handshake, and the error says it
// may not speak TLS. For mutual TLS, give cfg the client's Certificates
// (or GetClientCertificate).
//
// On the server, serve a TLS listener (see ListenTLS); the method's
// context then carries the connection's TLS state, with the client's
// verified certificate under mutual TLS (see PeerCertificates and
// PeerFromContext).
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.tlsConfig = cfg }
}

// streamDialer returns the dial function of a client's connections to
// address: TCP (or Unix), with TLS on top when WithTLS gave a config.
func streamDialer(network, address string, o *options) func(ctx context.Context) (net.Conn, error) {
	nd := &net.Dialer{Timeout: o.dialTimeout, KeepAlive: 30 * time.Second}
	if o.tlsConfig == nil {
		return func(ctx context.Context) (net.Conn, error) {
			return nd.DialContext(ctx, network, address)
		}
	}
	cfg := o.tlsConfig
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	return func(ctx context.Context) (net.Conn, error) {
		if nd.Timeout > 0 { // the handshake too, as tls.Dialer bounds it
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, nd.Timeout)
			defer cancel()
		}
		raw, err := nd.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, tlsHandshakeError(address, err)
		}
		return tc, nil
	}
}

// tlsHandshakeError says that err ended the TLS handshake with address, with
// a hint when the likely cause is a server that does not speak TLS: it
// closed the connection or refused the handshake outright. err stays in
// the chain, so that its kind (a certificate error, an alert) is found.
func tlsHandshakeError(address string, err error) error {
	var oe *net.OpError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &oe) && oe.Op == "remote error" && strings.HasSuffix(oe.Err.Error(), "handshake failure"):
		return fmt.Errorf("TLS handshake with %s: %w (does the server listen with TLS? see rpc.ListenTLS)", address, err)
	}
	return fmt.Errorf("TLS handshake with %s: %w", address, err)
}

// ListenTLS returns a TLS listener on address for Server.Serve. cfg must
// hold the server's certificate; for mutual TLS, set cfg.ClientAuth to
// tls.RequireAndVerifyClientCert and cfg.ClientCAs to the pool that signs
// the clients' certificates. Each connection's handshake runs when the
// server first reads from it, off the accepting goroutine, so a slow or
// failed handshake delays no other client; a client whose certificate is
// refused is disconnected, and its calls fail at once as not executed.
// With the JSON codec on (the default), a client that connects without TLS
// (a semrpc, net/rpc or JSON-RPC client) has its first call refused, not
// run, with an error saying that the server takes TLS only; failed
// handshakes are logged.
func ListenTLS(network, address string, cfg *tls.Config) (net.Listener, error) {
	return tls.Listen(network, address, cfg)
}
