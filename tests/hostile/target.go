//go:build linux

package hostile

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// kind is how the attacked server is reached.
type kind string

const (
	overTCP  kind = "tcp"  // Serve on a TCP listener
	overTLS  kind = "tls"  // Serve on rpc.ListenTLS
	overHTTP kind = "http" // an http.Server with the server at rpc.DefaultRPCPath, its debug page at rpc.DefaultDebugPath
)

// logPrefix starts every line the attacked server's logger writes: a line
// without it was forged by a peer.
const logPrefix = "server: "

// target is an attacked server: a default rpc.NewServer with the Store
// service (plus the options an attack names, such as an interceptor), on
// loopback, and the legitimate clients that call it on their own
// connections.
type target struct {
	kind  kind
	srv   *rpc.Server
	store *Store
	addr  *net.TCPAddr
	log   *logCapture

	ln         net.Listener
	httpSrv    *http.Server
	serveDone  chan struct{}
	serveErr   error // what Serve returned; read after serveDone
	clientTLS  *tls.Config
	clientOpts []rpc.Option

	legit *legitLoad
}

// targetConfig says what server an attack needs.
type targetConfig struct {
	kind    kind
	opts    []rpc.Option // beyond the defaults
	bigSize int          // the size of the value under BigKey
	// clientOpts are the legitimate clients' options beyond the defaults
	// (a token the server's interceptor wants).
	clientOpts []rpc.Option
}

func startTarget(cfg targetConfig) (*target, error) {
	if cfg.kind == "" {
		cfg.kind = overTCP
	}
	tg := &target{kind: cfg.kind, log: newLogCapture(), store: newStore(cfg.bigSize), serveDone: make(chan struct{}),
		clientOpts: cfg.clientOpts}
	opts := []rpc.Option{rpc.WithLogger(log.New(tg.log, logPrefix, log.LstdFlags))}
	if !currentScale().full {
		opts = append(opts, quickTimeouts...)
	}
	opts = append(opts, cfg.opts...)
	tg.srv = rpc.NewServer(opts...)
	if err := tg.srv.Register(tg.store); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tg.addr = ln.Addr().(*net.TCPAddr)
	switch cfg.kind {
	case overTCP:
		tg.ln = ln
		go tg.serve(func() error { return tg.srv.Serve(ln) })
	case overTLS:
		serverCfg, clientCfg, err := selfSigned()
		if err != nil {
			ln.Close()
			return nil, err
		}
		tg.clientTLS = clientCfg
		// rpc.ListenTLS is tls.Listen; wrap the listener we have, on the
		// port we know.
		tg.ln = tls.NewListener(ln, serverCfg)
		go tg.serve(func() error { return tg.srv.Serve(tg.ln) })
	case overHTTP:
		mux := http.NewServeMux()
		mux.Handle(rpc.DefaultRPCPath, tg.srv)
		mux.Handle(rpc.DefaultDebugPath, tg.srv.DebugHandler())
		tg.ln = ln
		tg.httpSrv = &http.Server{Handler: mux, ErrorLog: log.New(tg.log, logPrefix+"http: ", log.LstdFlags)}
		go tg.serve(func() error { return tg.httpSrv.Serve(ln) })
	default:
		ln.Close()
		return nil, fmt.Errorf("hostile: unknown kind %q", cfg.kind)
	}
	return tg, nil
}

func (tg *target) serve(serve func() error) {
	defer close(tg.serveDone)
	tg.serveErr = serve()
}

// serving reports whether Serve is still running, and what it returned if
// not.
func (tg *target) serving() (bool, error) {
	select {
	case <-tg.serveDone:
		return false, tg.serveErr
	default:
		return true, nil
	}
}

// dial returns a legitimate client of the target, with default options
// but for opts.
func (tg *target) dial(ctx context.Context, opts ...rpc.Option) (*rpc.Client, error) {
	opts = append(append([]rpc.Option(nil), tg.clientOpts...), opts...)
	switch tg.kind {
	case overTLS:
		return rpc.Dial(ctx, "tcp", tg.addr.String(), append(opts, rpc.WithTLS(tg.clientTLS))...)
	case overHTTP:
		return rpc.DialHTTP(ctx, "tcp", tg.addr.String(), opts...)
	}
	return rpc.Dial(ctx, "tcp", tg.addr.String(), opts...)
}

// close stops the legitimate clients and the server.
func (tg *target) close() {
	if tg.legit != nil {
		tg.legit.stop()
	}
	if tg.httpSrv != nil {
		tg.httpSrv.Close()
	}
	tg.srv.Close()
	tg.ln.Close()
	select {
	case <-tg.serveDone:
	case <-time.After(5 * time.Second):
	}
}

// legitLoad is the legitimate clients: one at-most-once client and one
// with default options (no retries), each calling in a loop on its own
// goroutine while the load runs, and counting what failed. Pausing waits
// for the calls in flight, so that a measurement taken while paused sees
// no legitimate call.
type legitLoad struct {
	tg      *target
	clients []*rpc.Client
	wg      sync.WaitGroup

	mu       sync.Mutex // protects following
	cond     *sync.Cond
	running  bool
	stopped  bool
	busy     int
	ok, fail int
	firstErr string
	slowest  time.Duration // the longest call since the window began
}

// legitPace is how long each legitimate client waits between calls.
const legitPace = 5 * time.Millisecond

// legitTimeout bounds each legitimate call: a server that takes longer
// has failed its client.
const legitTimeout = 3 * time.Second

func (tg *target) startLegit(ctx context.Context) error {
	l := &legitLoad{tg: tg}
	l.cond = sync.NewCond(&l.mu)
	plain, err := tg.dial(ctx)
	if err != nil {
		return err
	}
	amo, err := tg.dial(ctx, rpc.WithSemantics(semantics.AtMostOnce()))
	if err != nil {
		plain.Close()
		return err
	}
	l.clients = []*rpc.Client{plain, amo}
	tg.legit = l
	for i, c := range l.clients {
		l.wg.Add(1)
		go l.run(c, fmt.Sprintf("legit-%d", i))
	}
	return nil
}

func (l *legitLoad) run(c *rpc.Client, key string) {
	defer l.wg.Done()
	for n := 0; ; n++ {
		l.mu.Lock()
		for !l.running && !l.stopped {
			l.cond.Wait()
		}
		if l.stopped {
			l.mu.Unlock()
			return
		}
		l.busy++
		l.mu.Unlock()

		start := time.Now()
		err := legitCall(c, key, n)
		took := time.Since(start)

		l.mu.Lock()
		l.busy--
		l.slowest = max(l.slowest, took)
		l.record(err)
		l.cond.Broadcast()
		l.mu.Unlock()
		time.Sleep(legitPace)
	}
}

// legitCall makes one small call: a put, then a get of it.
func legitCall(c *rpc.Client, key string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), legitTimeout)
	defer cancel()
	if n%2 == 0 {
		var r PutReply
		return c.Call(ctx, "Store.Put", PutArgs{Key: key, Value: []byte("value")}, &r)
	}
	var r GetReply
	if err := c.Call(ctx, "Store.Get", GetArgs{Key: key}, &r); err != nil {
		return err
	}
	if string(r.Value) != "value" {
		return fmt.Errorf("Store.Get %s: %q, want %q", key, r.Value, "value")
	}
	return nil
}

// record counts a call's outcome; l.mu must be held.
func (l *legitLoad) record(err error) {
	if err == nil {
		l.ok++
		return
	}
	l.fail++
	if l.firstErr == "" {
		l.firstErr = err.Error()
	}
}

// tally is what the legitimate calls did in one window.
type tally struct {
	OK, Failed int
	FirstError string `json:",omitempty"`
	Slowest    time.Duration
}

func (t *tally) add(o tally) {
	t.OK += o.OK
	t.Failed += o.Failed
	if t.FirstError == "" {
		t.FirstError = o.FirstError
	}
	t.Slowest = max(t.Slowest, o.Slowest)
}

// window runs the load for d and returns what its calls did.
func (l *legitLoad) window(d time.Duration) tally {
	l.mu.Lock()
	ok, fail := l.ok, l.fail
	l.firstErr, l.slowest = "", 0
	l.running = true
	l.cond.Broadcast()
	l.mu.Unlock()
	time.Sleep(d)
	l.pause()
	l.mu.Lock()
	defer l.mu.Unlock()
	return tally{OK: l.ok - ok, Failed: l.fail - fail, FirstError: l.firstErr, Slowest: l.slowest}
}

// pause stops the load and waits for its calls in flight.
func (l *legitLoad) pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = false
	for l.busy > 0 {
		l.cond.Wait()
	}
}

func (l *legitLoad) stop() {
	l.mu.Lock()
	l.stopped = true
	l.cond.Broadcast()
	l.mu.Unlock()
	l.wg.Wait()
	for _, c := range l.clients {
		c.Close()
	}
}

// freshCall makes one call from a new client with default options, within
// limit: a new user arriving.
func (tg *target) freshCall(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c, err := tg.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	var r PutReply
	return c.Call(ctx, "Store.Put", PutArgs{Key: "fresh", Value: []byte("value")}, &r)
}

// logCapture is the attacked server's log: it counts lines and keeps the
// first ones.
type logCapture struct {
	mu    sync.Mutex // protects following
	lines int
	kept  []string
	buf   []byte // a line not yet ended
}

const keptLogLines = 200

func newLogCapture() *logCapture { return &logCapture{} }

func (lc *logCapture) Write(p []byte) (int, error) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.buf = append(lc.buf, p...)
	for {
		i := bytes.IndexByte(lc.buf, '\n')
		if i < 0 {
			break
		}
		lc.lines++
		if len(lc.kept) < keptLogLines {
			lc.kept = append(lc.kept, string(lc.buf[:i]))
		}
		lc.buf = lc.buf[i+1:]
	}
	return len(p), nil
}

// snapshot returns the number of lines so far and the kept ones.
func (lc *logCapture) snapshot() (int, []string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.lines, append([]string(nil), lc.kept...)
}

// selfSigned returns a server configuration with a fresh certificate for
// 127.0.0.1, and a client configuration that trusts it.
func selfSigned() (server, client *tls.Config, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hostile test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client, nil
}
