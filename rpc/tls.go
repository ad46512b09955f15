package rpc

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// WithTLS makes Dial and DialCluster connect over TLS with cfg, which must
// not be modified afterwards. A cfg without ServerName verifies the
// server's certificate against the host of the address dialled. A
// certificate the client cannot verify, or a server that refuses the
// client's certificate, fails the call as not executed, and the error is
// permanent: the call ends there under every policy. For mutual TLS, give
// cfg the client's Certificates (or GetClientCertificate).
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
	td := &tls.Dialer{NetDialer: nd, Config: o.tlsConfig}
	return func(ctx context.Context) (net.Conn, error) {
		return td.DialContext(ctx, network, address)
	}
}

// ListenTLS returns a TLS listener on address for Server.Serve. cfg must
// hold the server's certificate; for mutual TLS, set cfg.ClientAuth to
// tls.RequireAndVerifyClientCert and cfg.ClientCAs to the pool that signs
// the clients' certificates. Each connection's handshake runs when the
// server first reads from it, off the accepting goroutine, so a slow or
// failed handshake delays no other client; a client whose certificate is
// refused is disconnected, and its calls fail at once as not executed.
func ListenTLS(network, address string, cfg *tls.Config) (net.Listener, error) {
	return tls.Listen(network, address, cfg)
}
