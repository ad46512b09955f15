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
	"fmt"
	"math/big"
	"net"
	stdrpc "net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// MetaSvc reports what its method saw of the call: metadata, deadline and
// peer. It answers with reply metadata.
type MetaSvc struct {
	calls atomic.Int64
	ctxs  chan context.Context // Keep sends its context here
}

// MetaSeen is what a MetaSvc method saw.
type MetaSeen struct {
	HasIncoming  bool
	Values       []string
	HasDeadline  bool
	Deadline     time.Time
	HasPeer      bool
	PeerAddr     string
	PeerNet      string
	TLS          bool
	PeerCertName string
	CertsHelper  string // what PeerCertificates gave
}

func see(ctx context.Context, key string) MetaSeen {
	var r MetaSeen
	if certs := PeerCertificates(ctx); len(certs) > 0 {
		r.CertsHelper = certs[0].Subject.CommonName
	}
	md, ok := FromIncomingContext(ctx)
	r.HasIncoming, r.Values = ok, md.Get(key)
	r.Deadline, r.HasDeadline = ctx.Deadline()
	if p, ok := PeerFromContext(ctx); ok {
		r.HasPeer, r.PeerAddr, r.PeerNet = true, p.Addr.String(), p.Addr.Network()
		if p.TLS != nil {
			r.TLS = true
			if len(p.TLS.PeerCertificates) > 0 {
				r.PeerCertName = p.TLS.PeerCertificates[0].Subject.CommonName
			}
		}
	}
	return r
}

// Echo reports what it saw of key and answers header h=<key> and trailer
// t=<values of key>.
func (m *MetaSvc) Echo(ctx context.Context, key string, r *MetaSeen) error {
	m.calls.Add(1)
	*r = see(ctx, key)
	if err := SetHeader(ctx, Pairs("h", key)); err != nil {
		return err
	}
	return SetTrailer(ctx, Metadata{"t": r.Values})
}

// Fail sets a trailer and fails.
func (m *MetaSvc) Fail(ctx context.Context, why string, r *MetaSeen) error {
	m.calls.Add(1)
	if err := SetTrailer(ctx, Pairs("why", why)); err != nil {
		return err
	}
	return errors.New(why)
}

// Flood tries to set a header over the limits and reports SetHeader's error.
func (m *MetaSvc) Flood(ctx context.Context, n int, r *string) error {
	md := Metadata{}
	for i := range n {
		md.Append("k", fmt.Sprint(i))
	}
	if err := SetHeader(ctx, md); err != nil {
		*r = err.Error()
		if !errors.Is(err, ErrMetadataTooLarge) {
			return fmt.Errorf("SetHeader error does not wrap ErrMetadataTooLarge: %v", err)
		}
	}
	return nil
}

// Keep hands its context to the test and returns.
func (m *MetaSvc) Keep(ctx context.Context, _ int, r *int) error {
	m.ctxs <- ctx
	return nil
}

// certificate makes a self-signed certificate named cn, for server
// (127.0.0.1) and client use.
func certificate(t *testing.T, cn string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, cert
}

// mutualTLS returns server and client configs that verify each other.
func mutualTLS(t *testing.T) (server, client *tls.Config) {
	scert, sx := certificate(t, "meta server")
	ccert, cx := certificate(t, "meta client")
	spool, cpool := x509.NewCertPool(), x509.NewCertPool()
	spool.AddCert(sx)
	cpool.AddCert(cx)
	server = &tls.Config{Certificates: []tls.Certificate{scert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: cpool}
	client = &tls.Config{Certificates: []tls.Certificate{ccert}, RootCAs: spool, ServerName: "127.0.0.1"}
	return server, client
}

// metaConn is one way to connect a client to a server, for the tests that
// run over each.
type metaConn struct {
	name     string
	setup    func(t *testing.T, srv *Server) Transport
	peerNet  string // the network of the method's Peer.Addr
	tls      bool
	certName string // the client certificate the method sees
}

func metaConns() []metaConn {
	return []metaConn{
		{name: "tcp", peerNet: "tcp", setup: func(t *testing.T, srv *Server) Transport {
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
		{name: "mtls", peerNet: "tcp", tls: true, certName: "meta client", setup: func(t *testing.T, srv *Server) Transport {
			scfg, ccfg := mutualTLS(t)
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
		{name: "pipe", peerNet: "pipe", setup: func(t *testing.T, srv *Server) Transport {
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
}

// startMeta serves a MetaSvc over conn and returns a client for it.
func startMeta(t *testing.T, conn metaConn, opts ...Option) (*Client, *MetaSvc) {
	t.Helper()
	srv := NewServer(WithLogger(discardLogger()))
	svc := &MetaSvc{ctxs: make(chan context.Context, 1)}
	if err := srv.Register(svc); err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn.setup(t, srv), opts...)
	t.Cleanup(func() {
		c.Close()
		srv.Shutdown(context.Background())
	})
	return c, svc
}

func TestMetadataTravelsBothWaysOverEveryConnection(t *testing.T) {
	policies := []semantics.Policy{semantics.NoRetry(), semantics.AtLeastOnce(), semantics.AtMostOnce()}
	for _, conn := range metaConns() {
		for _, p := range policies {
			t.Run(conn.name+"/"+p.Kind().String(), func(t *testing.T) {
				c, _ := startMeta(t, conn, WithSemantics(p))
				ctx := AppendToOutgoingContext(ctxT(t), "Tenant", "acme", "tenant", "blue")
				ctx = AppendToOutgoingContext(ctx, "trace-id", "42")
				var seen MetaSeen
				var header, trailer Metadata
				if err := c.Call(ctx, "MetaSvc.Echo", "tenant", &seen, WithHeader(&header), WithTrailer(&trailer)); err != nil {
					t.Fatal(err)
				}
				if !seen.HasIncoming || strings.Join(seen.Values, ",") != "acme,blue" {
					t.Errorf("method saw tenant = %q (incoming %v), want acme,blue", seen.Values, seen.HasIncoming)
				}
				if got := header.Get("h"); len(got) != 1 || got[0] != "tenant" {
					t.Errorf("header = %v, want h=tenant", header)
				}
				if got := trailer.Get("T"); strings.Join(got, ",") != "acme,blue" {
					t.Errorf("trailer = %v, want t=acme,blue", trailer)
				}
				if !seen.HasPeer || seen.PeerNet != conn.peerNet || seen.PeerAddr == "" {
					t.Errorf("peer: has %v, network %q, addr %q; want network %q", seen.HasPeer, seen.PeerNet, seen.PeerAddr, conn.peerNet)
				}
				if seen.TLS != conn.tls || seen.PeerCertName != conn.certName || seen.CertsHelper != conn.certName {
					t.Errorf("peer TLS %v with client certificate %q, want %v with %q", seen.TLS, seen.PeerCertName, conn.tls, conn.certName)
				}

				// The trailer of an answer that is an error reaches the caller too.
				trailer = nil
				err := c.Call(ctx, "MetaSvc.Fail", "no-funds", &seen, WithTrailer(&trailer))
				if !errors.Is(err, ErrApplication) || trailer.First("why") != "no-funds" {
					t.Errorf("Fail: err %v, trailer %v; want an application error and why=no-funds", err, trailer)
				}
			})
		}
	}
}

// Over TCP the method's Peer.Addr is the client's end of the connection.
func TestPeerAddrIsTheCallersAddress(t *testing.T) {
	srv := NewServer(WithLogger(discardLogger()))
	srv.Register(&MetaSvc{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())
	local := make(chan string, 1)
	c := NewClient(NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err == nil {
			local <- nc.LocalAddr().String()
		}
		return nc, err
	}))
	defer c.Close()
	var seen MetaSeen
	if err := c.Call(ctxT(t), "MetaSvc.Echo", "x", &seen); err != nil {
		t.Fatal(err)
	}
	if want := <-local; seen.PeerAddr != want {
		t.Fatalf("Peer.Addr = %q, want the client's address %q", seen.PeerAddr, want)
	}
	if seen.HasIncoming != true || seen.Values != nil {
		t.Fatalf("a call without metadata: incoming %v, values %v; want an empty incoming metadata", seen.HasIncoming, seen.Values)
	}
}

func TestCallerDeadlineBecomesTheMethodsDeadline(t *testing.T) {
	for _, conn := range metaConns() {
		t.Run(conn.name, func(t *testing.T) {
			tests := []struct {
				name     string
				deadline time.Duration // 0: the caller's context has none
				opts     []Option
				want     time.Duration // 0: the method's context has none
			}{
				{name: "none", want: 0},
				{name: "ctx deadline", deadline: time.Hour, want: time.Hour},
				{name: "ctx deadline at-most-once", deadline: time.Hour, opts: []Option{WithSemantics(semantics.AtMostOnce())}, want: time.Hour},
				{name: "WithTimeout", opts: []Option{WithTimeout(30 * time.Minute)}, want: 30 * time.Minute},
				{name: "retrying without deadline", opts: []Option{WithSemantics(semantics.AtLeastOnce())}, want: 0},
			}
			c, _ := startMeta(t, conn)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ctx := context.Background()
					start := time.Now()
					if tt.deadline > 0 {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, tt.deadline)
						defer cancel()
					}
					var seen MetaSeen
					if err := c.Call(ctx, "MetaSvc.Echo", "k", &seen, tt.opts...); err != nil {
						t.Fatal(err)
					}
					end := time.Now()
					if seen.HasDeadline != (tt.want > 0) {
						t.Fatalf("method has deadline %v (%v), want %v", seen.HasDeadline, seen.Deadline, tt.want > 0)
					}
					// The method's deadline is the caller's: between the
					// caller's deadline as of the call's start and as of
					// its end (the remaining time travels, not the clock).
					if tt.want > 0 && (seen.Deadline.Before(start.Add(tt.want)) || seen.Deadline.After(end.Add(tt.want))) {
						t.Fatalf("method deadline %v, want within [%v, %v]", seen.Deadline, start.Add(tt.want), end.Add(tt.want))
					}
				})
			}
		})
	}
}

func TestMetadataOverLimitsOrMalformedIsNotSent(t *testing.T) {
	many := Metadata{}
	for i := range MaxMetadataEntries + 1 {
		many.Append("k", fmt.Sprint(i))
	}
	tests := []struct {
		name string
		ctx  func(context.Context) context.Context
		want error
	}{
		{"too many values", func(ctx context.Context) context.Context { return NewOutgoingContext(ctx, many) }, ErrMetadataTooLarge},
		{"too many bytes", func(ctx context.Context) context.Context {
			return AppendToOutgoingContext(ctx, "big", strings.Repeat("x", MaxMetadataBytes))
		}, ErrMetadataTooLarge},
		{"odd pairs", func(ctx context.Context) context.Context { return AppendToOutgoingContext(ctx, "a", "1", "b") }, ErrBadMetadata},
		{"bad key", func(ctx context.Context) context.Context {
			return NewOutgoingContext(ctx, Metadata{"Bad Key": {"v"}})
		}, ErrBadMetadata},
		{"empty key", func(ctx context.Context) context.Context { return AppendToOutgoingContext(ctx, "", "v") }, ErrBadMetadata},
	}
	for _, p := range []semantics.Policy{semantics.NoRetry(), semantics.AtLeastOnce(), semantics.AtMostOnce()} {
		for _, tt := range tests {
			t.Run(p.Kind().String()+"/"+tt.name, func(t *testing.T) {
				c, svc := startMeta(t, metaConns()[0], WithSemantics(p))
				var seen MetaSeen
				err := c.Call(tt.ctx(ctxT(t)), "MetaSvc.Echo", "k", &seen)
				if !errors.Is(err, tt.want) || !errors.Is(err, ErrNotExecuted) {
					t.Fatalf("err = %v, want %v and not executed", err, tt.want)
				}
				if n := svc.calls.Load(); n != 0 {
					t.Fatalf("the method ran %d times", n)
				}
			})
		}
	}
}

// A peer that skips the client's checks gets its oversized metadata
// refused by the server, the method not run.
func TestServerRefusesOversizedMetadata(t *testing.T) {
	for _, conn := range metaConns() {
		t.Run(conn.name, func(t *testing.T) {
			srv := NewServer(WithLogger(discardLogger()))
			svc := &MetaSvc{}
			srv.Register(svc)
			tr := conn.setup(t, srv)
			defer func() {
				tr.Close()
				srv.Shutdown(context.Background())
			}()
			many := Metadata{}
			for i := range 10 * MaxMetadataEntries {
				many.Append(fmt.Sprintf("k%d", i), "")
			}
			bad := []struct {
				md   Metadata
				says string
			}{
				{Metadata{"big": {strings.Repeat("x", MaxMetadataBytes+1)}}, "metadata too large"},
				{many, "metadata too large"},
				{Metadata{"Upper": {"v"}}, "invalid metadata"},
			}
			var seen MetaSeen
			for _, b := range bad {
				err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "MetaSvc.Echo", Args: "k", Metadata: b.md}, &seen)
				if semantics.ClassOf(err) != semantics.ClassRejected || !strings.Contains(err.Error(), b.says) {
					t.Fatalf("err = %v (class %v), want a refusal saying %q", err, semantics.ClassOf(err), b.says)
				}
			}
			if n := svc.calls.Load(); n != 0 {
				t.Fatalf("the method ran %d times", n)
			}
			// The connection still serves.
			if err := tr.RoundTrip(ctxT(t), &Request{ServiceMethod: "MetaSvc.Echo", Args: "k"}, &seen); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSetHeaderRefusals(t *testing.T) {
	c, svc := startMeta(t, metaConns()[0])
	ctx := ctxT(t)
	var msg string
	if err := c.Call(ctx, "MetaSvc.Flood", MaxMetadataEntries+1, &msg); err != nil || !strings.Contains(msg, "metadata too large") {
		t.Fatalf("Flood: %v, SetHeader said %q; want ErrMetadataTooLarge", err, msg)
	}
	var header Metadata
	if err := c.Call(ctx, "MetaSvc.Flood", MaxMetadataEntries, &msg, WithHeader(&header)); err != nil || len(header.Get("k")) != MaxMetadataEntries {
		t.Fatalf("Flood at the limit: %v, header has %d values", err, len(header.Get("k")))
	}
	var r int
	if err := c.Call(ctx, "MetaSvc.Keep", 0, &r); err != nil {
		t.Fatal(err)
	}
	kept := <-svc.ctxs
	if err := SetHeader(kept, Pairs("late", "1")); !errors.Is(err, ErrReplySent) {
		t.Fatalf("SetHeader after the reply: %v, want ErrReplySent", err)
	}
	if err := SetTrailer(context.Background(), Pairs("a", "1")); err == nil {
		t.Fatal("SetTrailer outside a method succeeded")
	}
}

// Stock net/rpc peers ignore the metadata fields both ways.
func TestMetadataWithStockNetRPCPeers(t *testing.T) {
	t.Run("stock client", func(t *testing.T) {
		srv := NewServer(WithLogger(discardLogger()))
		srv.Register(&MetaSvc{})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		defer srv.Shutdown(context.Background())
		sc, err := stdrpc.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		var seen MetaSeen
		// Echo sets a header and a trailer, which the stock client skips.
		if err := sc.Call("MetaSvc.Echo", "k", &seen); err != nil {
			t.Fatal(err)
		}
		if !seen.HasIncoming || !seen.HasPeer || seen.PeerNet != "tcp" {
			t.Fatalf("method saw %+v, want empty incoming metadata and a tcp peer", seen)
		}
		if err := sc.Call("MetaSvc.Echo", "k", &seen); err != nil {
			t.Fatalf("second call on the stock connection: %v", err)
		}
	})
	t.Run("stock server", func(t *testing.T) {
		c := dial(t, startStockServer(t))
		ctx := AppendToOutgoingContext(ctxT(t), "k", "v")
		var sum int
		header := Metadata{"stale": {"x"}}
		for i := range 2 {
			if err := c.Call(ctx, "StdArith.Add", Args{i, 1}, &sum, WithHeader(&header)); err != nil || sum != i+1 {
				t.Fatalf("Add with metadata to a stock server: %d, %v", sum, err)
			}
		}
		if header != nil {
			t.Fatalf("header from a stock server = %v, want none", header)
		}
		c.Close()
	})
}

// fakeTransport answers from a script of errors, then succeeds, and keeps
// the metadata of each request.
type fakeTransport struct {
	mu     sync.Mutex
	script []error
	sent   []Metadata
}

func (f *fakeTransport) RoundTrip(ctx context.Context, req *Request, reply any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, req.Metadata)
	if len(f.script) > 0 {
		err := f.script[0]
		f.script = f.script[1:]
		return err
	}
	*reply.(*int) = 7
	return nil
}

func (f *fakeTransport) Close() error { return nil }

func TestAttemptInterceptorSeesEveryAttempt(t *testing.T) {
	type seen struct {
		n       int
		class   semantics.Class
		backoff time.Duration
	}
	var attempts []seen
	var calls int
	ft := &fakeTransport{script: []error{
		semantics.NotSent(errors.New("refused")),
		semantics.MaybeExecuted(errors.New("reply lost")),
	}}
	c := NewClient(ft,
		WithSemantics(semantics.AtLeastOnce(semantics.Backoff(time.Millisecond, 2*time.Millisecond))),
		WithClientInterceptor(func(ctx context.Context, ci *CallInfo, next Handler) error {
			calls++
			return next(AppendToOutgoingContext(ctx, "call", "1"), ci)
		}),
		WithAttemptInterceptor(func(ctx context.Context, a *AttemptInfo, next AttemptHandler) error {
			err := next(AppendToOutgoingContext(ctx, "attempt", fmt.Sprint(a.Attempt)), a)
			attempts = append(attempts, seen{a.Attempt, semantics.ClassOf(err), a.Backoff})
			return err
		}),
	)
	defer c.Close()
	var r int
	if err := c.Call(ctxT(t), "X.Y", 1, &r); err != nil || r != 7 {
		t.Fatalf("Call: %d, %v", r, err)
	}
	if calls != 1 || len(attempts) != 3 {
		t.Fatalf("call interceptor ran %d times, attempt interceptor %d; want 1 and 3", calls, len(attempts))
	}
	wantClass := []semantics.Class{semantics.ClassNotSent, semantics.ClassMaybeExecuted, semantics.ClassNone}
	for i, a := range attempts {
		if a.n != i+1 || a.class != wantClass[i] {
			t.Errorf("attempt %d: number %d class %v, want %d %v", i, a.n, a.class, i+1, wantClass[i])
		}
		if (a.backoff > 0) != (i > 0) {
			t.Errorf("attempt %d: backoff %v, want > 0 exactly after the first", i+1, a.backoff)
		}
		if md := ft.sent[i]; md.First("call") != "1" || md.First("attempt") != fmt.Sprint(i+1) {
			t.Errorf("attempt %d sent metadata %v, want call=1 attempt=%d", i+1, md, i+1)
		}
	}
}

// Under at-most-once the attempts are those of the call, not the session
// handshake, and they reach the server.
func TestAttemptInterceptorAtMostOnceOverTCP(t *testing.T) {
	var n atomic.Int64
	c, svc := startMeta(t, metaConns()[0], WithSemantics(semantics.AtMostOnce()),
		WithAttemptInterceptor(func(ctx context.Context, a *AttemptInfo, next AttemptHandler) error {
			n.Add(1)
			if a.ServiceMethod != "MetaSvc.Echo" {
				t.Errorf("attempt of %q", a.ServiceMethod)
			}
			return next(AppendToOutgoingContext(ctx, "seen-by", "attempt"), a)
		}))
	var seen MetaSeen
	for range 3 {
		if err := c.Call(ctxT(t), "MetaSvc.Echo", "seen-by", &seen); err != nil {
			t.Fatal(err)
		}
		if len(seen.Values) != 1 || seen.Values[0] != "attempt" {
			t.Fatalf("method saw %v", seen.Values)
		}
	}
	if n.Load() != 3 || svc.calls.Load() != 3 {
		t.Fatalf("attempts %d, executions %d; want 3 and 3", n.Load(), svc.calls.Load())
	}
}

func TestMetadataHelpers(t *testing.T) {
	md := Pairs("A", "1", "a", "2")
	md.Append("B", "3")
	if got := md.Get("a"); strings.Join(got, ",") != "1,2" {
		t.Errorf("Get(a) = %v", got)
	}
	cp := md.Copy()
	cp.Set("a", "x")
	cp.Delete("b")
	if md.First("A") != "1" || md.First("b") != "3" || cp.First("a") != "x" || cp.Get("b") != nil {
		t.Errorf("Copy is not deep: md %v, copy %v", md, cp)
	}
	if s := JoinMetadata(md, Pairs("c", "4")).String(); s != `a="1", a="2", b="3", c="4"` {
		t.Errorf("Join.String = %s", s)
	}
	if md.Len() != 2 || NewMetadata(map[string]string{"K": "v"}).First("k") != "v" {
		t.Errorf("Len %d, NewMetadata lowercases keys", md.Len())
	}
	base := AppendToOutgoingContext(context.Background(), "a", "1")
	child := AppendToOutgoingContext(base, "a", "2")
	got, _ := FromOutgoingContext(base)
	if len(got.Get("a")) != 1 {
		t.Errorf("appending to a child changed the parent's metadata: %v", got)
	}
	if got, _ := FromOutgoingContext(child); len(got.Get("a")) != 2 {
		t.Errorf("child metadata = %v", got)
	}
	if _, ok := FromOutgoingContext(context.Background()); ok {
		t.Error("FromOutgoingContext found metadata in a bare context")
	}
}

// testCarrier is a custom transport's request: gob-free arguments, and
// metadata both ways.
type testCarrier struct {
	arg             string
	md              Metadata
	header, trailer Metadata
}

func (c *testCarrier) DecodeArgs(v any) error {
	*v.(*string) = c.arg
	return nil
}
func (c *testCarrier) IncomingMetadata() Metadata { return c.md }
func (c *testCarrier) Peer() *Peer                { return nil }
func (c *testCarrier) SetReplyMetadata(h, t Metadata) {
	c.header, c.trailer = h, t
}

// A duplicate answered from the at-most-once table gets the reply metadata
// of the execution it repeats; Handle gives a carrier's metadata to the
// method and its reply metadata back.
func TestDuplicateGetsTheCachedReplyMetadata(t *testing.T) {
	srv := NewServer(WithLogger(discardLogger()))
	svc := &MetaSvc{}
	srv.Register(svc)
	defer srv.Close()
	id, err := srv.Table().Open()
	if err != nil {
		t.Fatal(err)
	}
	h := &semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: srv.Table().Epoch()}
	for i, md := range []Metadata{Pairs("tenant", "first"), Pairs("tenant", "second")} {
		c := &testCarrier{arg: "tenant", md: md}
		reply, err := srv.Handle(ctxT(t), "MetaSvc.Echo", h, c)
		if err != nil {
			t.Fatal(err)
		}
		seen := reply.(*MetaSeen)
		if seen.HasPeer || strings.Join(seen.Values, ",") != "first" {
			t.Errorf("delivery %d: reply %+v, want the first execution's (tenant first, no peer)", i, seen)
		}
		if c.header.First("h") != "tenant" || c.trailer.First("t") != "first" {
			t.Errorf("delivery %d: reply metadata %v / %v, want h=tenant / t=first", i, c.header, c.trailer)
		}
	}
	if n := svc.calls.Load(); n != 1 {
		t.Fatalf("executions = %d, want 1", n)
	}
}
