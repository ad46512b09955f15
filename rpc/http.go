package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// The paths and answer net/rpc uses for RPC over HTTP, so that its clients
// and servers interoperate with ours.
const (
	// DefaultRPCPath is where HandleHTTP serves RPC connections.
	DefaultRPCPath = "/_goRPC_"
	// DefaultDebugPath is where HandleHTTP serves the debug page.
	DefaultDebugPath = "/debug/rpc"

	httpConnected = "200 Connected to Go RPC"
)

// ServeHTTP serves one RPC connection over HTTP, as net/rpc does: the
// client sends CONNECT, the server answers "200 Connected to Go RPC" and
// the connection then carries the RPC wire (gob, or JSON-RPC if its first
// bytes open a JSON object and WithJSONCodec is on). Other methods get 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodConnect {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Allow", http.MethodConnect)
		w.WriteHeader(http.StatusMethodNotAllowed)
		io.WriteString(w, "405 must CONNECT\n")
		return
	}
	if s.atCapacity() {
		s.noteRefusal()
		http.Error(w, errAtCapacity.Error(), http.StatusServiceUnavailable)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "rpc: this HTTP server cannot hand over its connections (no http.Hijacker)", http.StatusInternalServerError)
		return
	}
	nc, buf, err := hj.Hijack()
	if err != nil {
		s.logPeer("rpc: hijacking %s: %s", logText(req.RemoteAddr), logText(err))
		return
	}
	nc.SetDeadline(time.Time{}) // the HTTP server's timeouts are not the RPC connection's
	if _, err := io.WriteString(nc, "HTTP/1.0 "+httpConnected+"\n\n"); err != nil {
		nc.Close()
		return
	}
	if buf.Reader.Buffered() > 0 { // bytes the client sent before our answer
		nc = &bufferedConn{Conn: nc, r: buf.Reader}
	}
	// Close and Shutdown reach the connection through the server (net/http
	// does not track hijacked ones).
	if s.opts.noJSON {
		s.serveConn(nc)
		return
	}
	s.sniff(nc) // serves on its own goroutine, tracked by the server
}

// bufferedConn reads what a bufio.Reader still holds before the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn returns the connection underneath.
func (c *bufferedConn) NetConn() net.Conn { return c.Conn }

// HandleHTTP registers the server on http.DefaultServeMux: RPC at rpcPath
// and the debug page at debugPath (DefaultRPCPath and DefaultDebugPath are
// net/rpc's), unless debugPath is empty. The debug page answers loopback
// peers only, unless the server was built WithDebugAccess. Like
// http.Handle, it panics if a path is already registered; to use another
// mux, register the server (an http.Handler) and DebugHandler yourself.
func (s *Server) HandleHTTP(rpcPath, debugPath string) {
	http.Handle(rpcPath, s)
	if debugPath != "" {
		http.Handle(debugPath, s.DebugHandler())
	}
}

// DebugHandler returns a handler for a page listing the server's services
// and methods with their counters. It answers only the requests the
// server's WithDebugAccess allows (by default, those from a loopback
// address), and 403 Forbidden to the others.
func (s *Server) DebugHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !s.opts.debugAccess.allows(req) {
			http.Error(w, "403 Forbidden: the RPC debug page is not served to this peer (see rpc.WithDebugAccess)", http.StatusForbidden)
			return
		}
		st := s.Stats()
		page := debugPage{Health: s.health(), Rejected: st.Rejected}
		for _, svc := range s.methods().Services {
			ds := debugService{Name: svc.Name}
			for _, m := range svc.Methods {
				ds.Methods = append(ds.Methods, debugMethod{MethodInfo: m, Stats: st.Methods[m.Name]})
			}
			page.Services = append(page.Services, ds)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := debugTemplate.Execute(w, page); err != nil {
			s.logger.Printf("rpc: debug page: %v", err)
		}
	})
}

type debugPage struct {
	Health   *HealthReply
	Rejected uint64
	Services []debugService
}

type debugService struct {
	Name    string
	Methods []debugMethod
}

type debugMethod struct {
	MethodInfo
	Stats MethodStats
}

var debugTemplate = template.Must(template.New("debug").Parse(`<!DOCTYPE html>
<html><head><title>semrpc services</title></head><body>
<p>status {{.Health.Status}} · epoch {{.Health.Epoch}} · durable {{.Health.Durable}} · connections {{.Health.Connections}} · rejected {{.Rejected}}</p>
{{range .Services}}<h2>{{.Name}}</h2>
<table border="1" cellpadding="4"><tr><th>method</th><th>args</th><th>reply</th><th>calls</th><th>errors</th><th>mean</th><th>max</th></tr>
{{range .Methods}}<tr><td>{{.Name}}</td><td>{{.Args}}</td><td>{{.Reply}}</td><td>{{.Stats.Calls}}</td><td>{{.Stats.Errors}}</td><td>{{.Stats.Mean}}</td><td>{{.Stats.Max}}</td></tr>
{{end}}</table>
{{end}}</body></html>
`))

// DialHTTP returns a client for a server offering RPC over HTTP at
// DefaultRPCPath (a semrpc server's HandleHTTP, or net/rpc's).
func DialHTTP(ctx context.Context, network, address string, opts ...Option) (*Client, error) {
	return DialHTTPPath(ctx, network, address, DefaultRPCPath, opts...)
}

// DialHTTPPath is DialHTTP at path. Each connection, the first and every
// redial, is made with an HTTP CONNECT; the rest is as Dial: no I/O before
// the first call unless WithEagerDial, and the same options and semantics.
// With WithTLS the connection is TLS from its first byte, as for an HTTPS
// server (http.ServeTLS, or http.Serve on a ListenTLS listener).
// A server that does not answer the CONNECT as net/rpc does fails the dial,
// not executed and permanent.
func DialHTTPPath(ctx context.Context, network, address, path string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkAddress(network, address); err != nil {
		return nil, err
	}
	dial := streamDialer(network, address, &o) // TLS first, with WithTLS
	t := newStreamTransport(address, func(ctx context.Context) (net.Conn, error) {
		nc, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		if err := httpConnect(ctx, nc, path, o.dialTimeout); err != nil {
			nc.Close()
			return nil, err
		}
		return nc, nil
	}, &o)
	if o.eagerDial {
		if _, err := t.conn(ctx, false); err != nil {
			t.Close()
			return nil, err
		}
	}
	return newClient(t, o), nil
}

// errNotRPCOverHTTP is wrapped by the dial error when the server's answer
// to CONNECT is not net/rpc's.
var errNotRPCOverHTTP = errors.New("rpc: the HTTP server does not serve RPC at that path")

// httpConnect asks for the RPC connection and reads the answer, within
// timeout and ctx.
func httpConnect(ctx context.Context, nc net.Conn, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(nc, "CONNECT "+path+" HTTP/1.0\n\n"); err != nil {
		return err
	}
	// Read the answer a byte at a time: a buffered reader could swallow
	// the first bytes of the RPC stream.
	resp, err := http.ReadResponse(bufio.NewReaderSize(&oneByteReader{nc}, 16), &http.Request{Method: http.MethodConnect})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("reading the answer to CONNECT %s: %w (the server hung up: if it serves HTTPS, dial with WithTLS)", path, err)
		}
		return fmt.Errorf("reading the answer to CONNECT %s: %w", path, err)
	}
	resp.Body.Close()
	if resp.Status != httpConnected {
		return semantics.Permanent(fmt.Errorf("%w: CONNECT %s answered %q", errNotRPCOverHTTP, path, resp.Status))
	}
	nc.SetDeadline(time.Time{})
	return nil
}

// oneByteReader reads at most one byte per call.
type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
