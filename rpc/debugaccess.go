package rpc

import (
	"net"
	"net/http"
	"net/netip"
)

// The debug page (DebugHandler, HandleHTTP's debugPath) shows every method
// with its call counts and latencies: not for anyone who can reach the
// port. By default it answers loopback peers only.

// debugAccess decides who may see the debug page; nil means FromLoopback.
type debugAccess func(*http.Request) bool

func (a debugAccess) allows(req *http.Request) bool {
	if a == nil {
		return FromLoopback(req)
	}
	return a(req)
}

// WithDebugAccess sets who may see the server's debug page (DebugHandler,
// and HandleHTTP's debugPath): the requests for which allow returns true;
// the others get 403 Forbidden. allow runs for every request to the page,
// on the HTTP server's goroutine, and may look at anything in it (TLS
// client certificates, a header set by an authenticating proxy, the
// address). By default, and with a nil allow, only loopback peers are
// allowed (FromLoopback). To serve no debug page at all, give HandleHTTP an
// empty debugPath.
func WithDebugAccess(allow func(req *http.Request) bool) Option {
	return func(o *options) { o.debugAccess = allow }
}

// FromLoopback reports whether req came from a loopback address
// (127.0.0.0/8 or ::1), as its RemoteAddr says. Behind a reverse proxy on
// the same host every request comes from loopback: give such a server a
// WithDebugAccess that checks what the proxy vouches for. A request over a
// Unix socket has no IP address and is not from loopback.
func FromLoopback(req *http.Request) bool {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr // an address without a port
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
