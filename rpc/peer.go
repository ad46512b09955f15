package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
)

// Peer describes the other end of the connection a request came on.
type Peer struct {
	// Addr is the caller's address; LocalAddr the server's end.
	Addr, LocalAddr net.Addr
	// TLS is the connection's TLS state, nil when the connection is not
	// TLS. With mutual TLS, TLS.PeerCertificates[0] is the caller's
	// certificate and TLS.VerifiedChains its verified chains.
	TLS *tls.ConnectionState
}

// peerKey finds the Peer among a context's values.
type peerKey struct{}

// NewPeerContext returns a context carrying p as the peer of the request
// served under it: transports do this, tests may do it to call a method
// directly.
func NewPeerContext(ctx context.Context, p *Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFromContext returns the peer of the request served under ctx, and
// whether the transport could tell it. Over TCP and TLS it always can.
func PeerFromContext(ctx context.Context) (*Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(*Peer)
	return p, ok && p != nil
}

// peerSource makes a request's Peer on demand, so that requests whose
// method never asks pay nothing for it.
type peerSource struct {
	conn    io.ReadWriteCloser // a net.Conn (maybe *tls.Conn), or nil
	carrier MetadataCarrier    // a transport that tells its own peer, or nil
}

func (ps peerSource) peer() *Peer {
	if ps.carrier != nil {
		return ps.carrier.Peer()
	}
	return peerOf(ps.conn)
}

// tlsConn is what peerOf needs of a TLS connection (*tls.Conn has it).
type tlsConn interface {
	ConnectionState() tls.ConnectionState
}

// peerOf describes the far end of rwc, nil when it is not a network
// connection.
func peerOf(rwc io.ReadWriteCloser) *Peer {
	nc, ok := rwc.(net.Conn)
	if !ok {
		return nil
	}
	p := &Peer{Addr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr()}
	// Serve hands connections on wrapped (the codec sniff, HTTP's
	// buffered reader); a wrapper tells what it wraps through NetConn, as
	// tls.Conn does.
	for depth := 0; nc != nil && depth < 4; depth++ {
		if tc, ok := nc.(tlsConn); ok {
			st := tc.ConnectionState()
			p.TLS = &st
			break
		}
		w, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = w.NetConn()
	}
	return p
}

// PeerCertificates returns the certificates the caller of the request
// served under ctx presented over TLS, its own first (verified when the
// server requires and verifies client certificates), or nil when the
// connection is not TLS or the caller sent none.
func PeerCertificates(ctx context.Context) []*x509.Certificate {
	if p, ok := PeerFromContext(ctx); ok && p.TLS != nil {
		return p.TLS.PeerCertificates
	}
	return nil
}
