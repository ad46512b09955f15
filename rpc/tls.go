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

	"github.com/semrpc/semrpc/semantics"
)

// WithTLS makes Dial and DialCluster connect over TLS with cfg, which must
// not be modified afterwards. A cfg without ServerName verifies the
// server's certificate against the host of the address dialled. A
// certificate the client cannot verify, or a server that refuses the
// client's certificate, fails the call as not executed, and the error is
// permanent: the call ends there under every policy. A server's refusal
// (of a missing or untrusted client certificate) reads "the server at …
// refused the TLS connection" with the server's alert, and matches
// ErrRejected, not ErrConnLost. Under TLS 1.3 the server checks the
// client's certificate after the client's half of the handshake has ended,
// so its alert comes with the connection's first read rather than in the
// dial; no request on that connection ran, and the call dials no other.
// A server that does not listen with TLS, if it is a semrpc server with
// its JSON codec on (the default), refuses the handshake too, and the
// error says it may not speak TLS. For mutual TLS, give cfg the client's
// Certificates (or GetClientCertificate).
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
			// A server that presented its certificate speaks TLS: its
			// alert refuses this client.
			spoke := len(tc.ConnectionState().PeerCertificates) > 0
			raw.Close()
			return nil, tlsHandshakeError(address, err, spoke)
		}
		return tc, nil
	}
}

// tlsHandshakeError says that err ended the TLS handshake with address.
// spoke reports that the server presented its certificate first. An alert
// from a server that spoke TLS is its refusal of the client (see
// tlsRefusedError); a server that closed the connection or refused the
// handshake before it spoke TLS gets a hint that it may not speak TLS at
// all. err stays in the chain, so that its kind (a certificate error, an
// alert) is found.
func tlsHandshakeError(address string, err error, spoke bool) error {
	switch {
	case spoke && isTLSAlertSaying(err, ""):
		return &tlsRefusedError{Addr: address, Alert: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		isTLSAlertSaying(err, "handshake failure"):
		return fmt.Errorf("TLS handshake with %s: %w (does the server listen with TLS? see rpc.ListenTLS)", address, err)
	case isTLSAlertSaying(err, ""):
		return &tlsRefusedError{Addr: address, Alert: err}
	}
	return fmt.Errorf("TLS handshake with %s: %w", address, err)
}

// tlsRefusedError is a TLS server's refusal of the connection: it ended
// the connection with an alert (the client's certificate missing or not
// trusted, say) before it answered any request, so no request on the
// connection ran. errors.Is(err, ErrRejected) holds: an attempt that meets
// it is refused, not executed (tlsRefusal also marks it permanent: the
// same client would be refused the same way). errors.As finds the alert (a
// *net.OpError with Op "remote error").
//
// Under TLS 1.3 the server checks the client's certificate after the
// client's half of the handshake has ended, so the alert arrives on the
// connection's first read, not in the dial; under TLS 1.2 it ends the
// handshake. Both read as this error.
type tlsRefusedError struct {
	Addr  string // the address dialled
	Alert error  // the server's alert, as crypto/tls reported it
}

func (e *tlsRefusedError) Error() string {
	return "rpc: the server at " + e.Addr + " refused the TLS connection: " + e.Alert.Error() + tlsRefusalHint(e.Alert)
}

// Unwrap returns ErrRejected and the alert.
func (e *tlsRefusedError) Unwrap() []error { return []error{semantics.ErrRejected, e.Alert} }

// tlsRefusal is the error of the calls on a connection to address that
// failed with err, a TLS alert, before the server answered anything: a
// refusal, not executed and permanent, and not a lost connection.
func tlsRefusal(address string, err error) error {
	return semantics.Permanent(&tlsRefusedError{Addr: address, Alert: err})
}

// isTLSRefusal reports whether err is a connection's failure made by
// tlsRefusal: a new connection would be refused the same way.
func isTLSRefusal(err error) bool {
	var re *tlsRefusedError
	return errors.As(err, &re)
}

// isTLSAlertSaying reports whether err is a fatal alert from the TLS peer
// (crypto/tls reports it as a *net.OpError with Op "remote error") whose
// text holds word.
func isTLSAlertSaying(err error, word string) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && strings.Contains(oe.Err.Error(), word)
}

// tlsRefusalHint suggests what to change for an alert that refuses the
// client's certificate, or the lack of one.
func tlsRefusalHint(alert error) string {
	switch {
	case isTLSAlertSaying(alert, "certificate required"):
		return " (the server requires a client certificate: give one in the tls.Config of rpc.WithTLS, as Certificates or GetClientCertificate)"
	case isTLSAlertSaying(alert, "certificate"), isTLSAlertSaying(alert, "access denied"):
		return " (the server did not accept the client certificate, or requires one: see rpc.WithTLS)"
	case isTLSAlertSaying(alert, "handshake failure"):
		// What a TLS 1.2 server says to a client without a certificate.
		return " (does the server require a client certificate? see rpc.WithTLS)"
	}
	return ""
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
