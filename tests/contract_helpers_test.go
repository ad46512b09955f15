package tests

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
	netrpc "net/rpc"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testnet"
	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
	"github.com/semrpc/semrpc/tests/faultproxy"
)

// The contract suite's fixtures: a counting service, a server that can be
// crashed, shut down and restarted on the same address (TCP, TLS or a
// labrpc network, in memory or with a durable store), a client per
// transport, and the checks every cell makes on a call's error.

// Tally is the contract suite's service: every method counts its runs, the
// ground truth of how often a call executed.
type Tally struct {
	runs atomic.Int64

	// The next Hold blocks (once) until released or until its context ends.
	armed    atomic.Bool
	started  chan struct{} // a blocking Hold has started
	release  chan struct{} // closed to let a blocking Hold return
	returned chan struct{} // a blocking Hold has returned
	ctxEnded atomic.Int64  // blocking Holds whose context ended first
	ctxErr   chan error    // and how it ended
}

func newTally() *Tally {
	return &Tally{started: make(chan struct{}, 1), release: make(chan struct{}), returned: make(chan struct{}, 1), ctxErr: make(chan error, 1)}
}

// TallyArgs identify a call; Pad makes it as large as a test wants.
type TallyArgs struct {
	ID  int64
	Pad []byte
}

// TallyReply carries the number of runs so far, this one included, and a
// payload of the size asked for.
type TallyReply struct {
	Runs int64
	Pad  []byte
}

// BoxArgs carry any value; an unregistered type in V cannot be encoded.
type BoxArgs struct {
	V any
}

// notRegistered is never registered with gob.
type notRegistered struct{ X int }

// BigArgs ask Big for a reply of N bytes.
type BigArgs struct{ N int }

// count counts a run. On a durable server a method runs inside the store's
// transaction, which may be rolled back and run again (see
// rpc.WithDurableStore): there a run counts when its transaction commits,
// so the count is of executions whose effects persist.
func (c *Tally) count(ctx context.Context) int64 {
	if tx := boltstore.TxOf(ctx); tx != nil {
		tx.OnCommit(func() { c.runs.Add(1) })
		return c.runs.Load() + 1
	}
	return c.runs.Add(1)
}

func (c *Tally) Incr(ctx context.Context, args TallyArgs, reply *TallyReply) error {
	reply.Runs = c.count(ctx)
	return nil
}

// Big returns a reply with N bytes of payload.
func (c *Tally) Big(ctx context.Context, args BigArgs, reply *TallyReply) error {
	reply.Runs = c.count(ctx)
	reply.Pad = make([]byte, args.N)
	return nil
}

func (c *Tally) Box(ctx context.Context, args BoxArgs, reply *TallyReply) error {
	reply.Runs = c.count(ctx)
	return nil
}

// Hold counts its run; if armed, it then blocks until released or until its
// context ends (which it reports as its error).
func (c *Tally) Hold(ctx context.Context, args TallyArgs, reply *TallyReply) error {
	reply.Runs = c.count(ctx)
	if err := ctx.Err(); err != nil {
		// A durable store may run a method again after its first run
		// failed (rpc.WithDurableStore): it must fail the same way.
		return err
	}
	if !c.armed.CompareAndSwap(true, false) {
		return nil
	}
	c.started <- struct{}{}
	defer func() { c.returned <- struct{}{} }()
	select {
	case <-c.release:
		return nil
	case <-ctx.Done():
		c.ctxEnded.Add(1)
		c.ctxErr <- ctx.Err()
		return ctx.Err()
	}
}

// Fail runs and returns an application error.
func (c *Tally) Fail(ctx context.Context, args TallyArgs, reply *TallyReply) error {
	reply.Runs = c.count(ctx)
	return errors.New("tally: refused")
}

// BoxReply runs and returns a reply that gob cannot encode.
func (c *Tally) BoxReply(ctx context.Context, args TallyArgs, reply *BoxArgs) error {
	c.count(ctx)
	reply.V = notRegistered{1}
	return nil
}

// releaseHold lets a blocked Hold return, once.
func (c *Tally) releaseHold() {
	select {
	case <-c.release:
	default:
		close(c.release)
	}
}

// StockTally is the same service for a stock net/rpc server.
type StockTally struct{}

func (StockTally) Incr(args TallyArgs, reply *TallyReply) error { reply.Runs = 1; return nil }

// transport names how a cell's client reaches its server.
type transport string

const (
	overTCP    transport = "tcp"    // rpc.Dial
	overStream transport = "stream" // rpc.NewStreamTransport over TLS
	overLab    transport = "lab"    // rpc.NewClient(labrpc end)
	overStock  transport = "stock"  // rpc.Dial to a stock net/rpc server
)

var allKinds = []semantics.Kind{semantics.KindNoRetry, semantics.KindAtLeastOnce, semantics.KindAtMostOnce, semantics.KindExactlyOnce}

// policyOf returns the policy of kind with the suite's short backoff.
func policyOf(k semantics.Kind) semantics.Policy {
	bo := semantics.Backoff(time.Millisecond, 20*time.Millisecond)
	switch k {
	case semantics.KindAtLeastOnce:
		return semantics.AtLeastOnce(bo)
	case semantics.KindAtMostOnce:
		return semantics.AtMostOnce(bo)
	case semantics.KindExactlyOnce:
		return semantics.ExactlyOnce(bo)
	}
	return semantics.NoRetry()
}

// Certificates for the TLS transport: one trusted, one from another CA.
var (
	tlsOnce                          sync.Once
	tlsServer, tlsClient, tlsWrongCA *tls.Config
)

func tlsConfigs(t testing.TB) (server, client, wrongCA *tls.Config) {
	t.Helper()
	tlsOnce.Do(func() {
		var good *x509.Certificate
		tlsServer, good = selfSignedCert(t)
		_, other := selfSignedCert(t)
		pool := x509.NewCertPool()
		pool.AddCert(good)
		tlsClient = &tls.Config{RootCAs: pool}
		wrong := x509.NewCertPool()
		wrong.AddCert(other)
		tlsWrongCA = &tls.Config{RootCAs: wrong}
	})
	if tlsServer == nil {
		t.Fatal("no TLS certificates")
	}
	return tlsServer, tlsClient, tlsWrongCA
}

func selfSignedCert(t testing.TB) (*tls.Config, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "semrpc contract"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, cert
}

// freeAddr returns a loopback address where nothing listens, which no other
// test's listener takes meanwhile (see testnet).
func freeAddr(t testing.TB) string { return testnet.FreeAddr(t) }

// node is one server of a cell, which the cell may crash, shut down and
// start again on the same address (or under the same labrpc name), with
// the same Tally and, if durable, the same store file.
type node struct {
	t     *testing.T
	tr    transport
	tally *Tally
	path  string        // the bolt file of a durable node; "" for in memory
	lease time.Duration // the table's lease; 0 for the default
	addr  string        // where a TCP or TLS node listens
	lab   *labrpc.Network

	loseReply atomic.Bool   // the next Tally.Incr's reply is lost in a crash
	ran       chan struct{} // that Incr has run (and, if durable, committed)

	hmu     sync.Mutex // protects headers
	headers map[int64]semantics.Header

	mu  sync.Mutex // protects cur
	cur *serverInstance
}

// serverInstance is one life of a node.
type serverInstance struct {
	srv     *rpc.Server
	st      *boltstore.Store
	done    chan struct{} // Serve returned
	crashed chan struct{} // closed when this life ends
}

const labServer = "server"

func newNode(t *testing.T, tr transport, durable bool, lease time.Duration, lab *labrpc.Network) *node {
	n := &node{t: t, tr: tr, tally: newTally(), lease: lease, lab: lab,
		ran: make(chan struct{}, 1), headers: make(map[int64]semantics.Header)}
	if durable {
		n.path = filepath.Join(t.TempDir(), "s.db")
	}
	if tr != overLab {
		n.addr = freeAddr(t)
	}
	t.Cleanup(n.stop)
	return n
}

// start brings the node up. It may run on a goroutine of the test.
func (n *node) start() error {
	in := &serverInstance{done: make(chan struct{}), crashed: make(chan struct{})}
	opts := []rpc.Option{rpc.WithLogger(quiet()), rpc.WithServerInterceptor(n.intercept(in))}
	if n.path != "" {
		st, err := boltstore.Open(n.path, &boltstore.Config{NoSync: true, Table: semantics.TableConfig{Lease: n.lease}})
		if err != nil {
			return err
		}
		in.st = st
		opts = append(opts, rpc.WithDurableStore(st))
	} else if n.lease > 0 {
		opts = append(opts, rpc.WithTable(semantics.NewTable(&semantics.TableConfig{Lease: n.lease})))
	}
	in.srv = rpc.NewServer(opts...)
	if err := in.srv.Register(n.tally); err != nil {
		return err
	}
	if n.tr == overLab {
		close(in.done)
		n.setCur(in)
		n.lab.AddServer(labServer, labrpc.MakeServerWith(in.srv))
		return nil
	}
	var l net.Listener
	var err error
	for i := 0; i < 200; i++ { // the old socket may linger a moment
		if l, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		if in.st != nil {
			in.st.Close()
		}
		return fmt.Errorf("listen again on %s: %w", n.addr, err)
	}
	if n.tr == overStream {
		srvCfg, _, _ := tlsConfigs(n.t)
		l = tls.NewListener(l, srvCfg)
	}
	n.setCur(in)
	go func() {
		defer close(in.done)
		in.srv.Serve(l)
	}()
	return nil
}

func (n *node) setCur(in *serverInstance) {
	n.mu.Lock()
	n.cur = in
	n.mu.Unlock()
}

func (n *node) take() *serverInstance {
	n.mu.Lock()
	defer n.mu.Unlock()
	in := n.cur
	n.cur = nil
	return in
}

// server returns the running server, or nil.
func (n *node) server() *rpc.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur == nil {
		return nil
	}
	return n.cur.srv
}

// mustStart starts the node or fails the test.
func (n *node) mustStart() {
	n.t.Helper()
	if err := n.start(); err != nil {
		n.t.Fatal(err)
	}
}

// startAfter starts the node after d, on a goroutine; the returned channel
// is closed once it is up (or failed to come up, reported with t.Error).
func (n *node) startAfter(d time.Duration) <-chan struct{} {
	up := make(chan struct{})
	go func() {
		defer close(up)
		time.Sleep(d)
		if err := n.start(); err != nil {
			n.t.Error(err)
		}
	}()
	n.t.Cleanup(func() { <-up })
	return up
}

// stop crashes the node: replies not yet sent are lost, the in-memory
// table is gone, the store is closed as a dying process leaves it.
func (n *node) stop() {
	in := n.take()
	if in == nil {
		return
	}
	if n.tr == overLab {
		n.lab.DeleteServer(labServer)
	}
	close(in.crashed)
	in.srv.Close()
	<-in.done
	if in.st != nil {
		in.st.Close()
	}
}

// shutdown stops the node gracefully.
func (n *node) shutdown(ctx context.Context) error {
	in := n.take()
	if in == nil {
		return errors.New("node not running")
	}
	err := in.srv.Shutdown(ctx)
	close(in.crashed)
	<-in.done
	if in.st != nil {
		in.st.Close()
	}
	return err
}

// intercept records the header of every at-most-once Incr and, when
// loseReply is set, holds the reply of the next Incr until the node
// crashes: the method ran (and its record committed) but its reply is
// never delivered as an answer.
func (n *node) intercept(in *serverInstance) rpc.Interceptor {
	return func(ctx context.Context, ci *rpc.CallInfo, next rpc.Handler) error {
		err := next(ctx, ci)
		if ci.ServiceMethod != "Tally.Incr" {
			return err
		}
		if ci.Header != nil {
			n.hmu.Lock()
			n.headers[ci.Args.(*TallyArgs).ID] = *ci.Header
			n.hmu.Unlock()
		}
		if !n.loseReply.CompareAndSwap(true, false) {
			return err
		}
		n.ran <- struct{}{}
		select {
		case <-ctx.Done():
		case <-in.crashed:
		}
		return semantics.MaybeExecuted(errors.New("contract: the server crashed before it sent the reply"))
	}
}

// header returns the at-most-once header the node saw for Incr id.
func (n *node) header(id int64) (semantics.Header, bool) {
	n.hmu.Lock()
	defer n.hmu.Unlock()
	h, ok := n.headers[id]
	return h, ok
}

// newLab returns a labrpc network, cleaned up with the test, and its seed.
func newLab(t *testing.T) *labrpc.Network {
	lab := labrpc.MakeNetworkSeed(seed(t))
	t.Cleanup(lab.Cleanup)
	return lab
}

// labEnd makes the client end, connected to the node's name and enabled.
func labEnd(lab *labrpc.Network, name string) *labrpc.ClientEnd {
	end := lab.MakeEnd(name)
	lab.Connect(name, labServer)
	lab.Enable(name, true)
	return end
}

// clientOpts are the options every cell's client has.
func clientOpts(k semantics.Kind) []rpc.Option {
	return []rpc.Option{rpc.WithSemantics(policyOf(k)), rpc.WithRedialBackoff(time.Millisecond, 20*time.Millisecond),
		rpc.WithLogger(quiet())}
}

// dialer returns the stream transport's dial function to addr (TLS).
func tlsDial(cfg *tls.Config, addr string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", addr)
	}
}

// newClient returns a client of kind k reaching addr over tr (for labrpc,
// through wrap(end) if wrap is not nil), closed with the test.
func newClient(t *testing.T, tr transport, k semantics.Kind, addr string, lab *labrpc.Network, wrap func(rpc.Transport) rpc.Transport) *rpc.Client {
	t.Helper()
	var c *rpc.Client
	switch tr {
	case overTCP, overStock:
		var err error
		c, err = rpc.Dial(context.Background(), "tcp", addr, clientOpts(k)...)
		if err != nil {
			t.Fatal(err)
		}
	case overStream:
		_, cfg, _ := tlsConfigs(t)
		c = rpc.NewClient(rpc.NewStreamTransport(tlsDial(cfg, addr), rpc.WithRedialBackoff(time.Millisecond, 20*time.Millisecond)), clientOpts(k)...)
	case overLab:
		var ct rpc.Transport = labEnd(lab, "client")
		if wrap != nil {
			ct = wrap(ct)
		}
		c = rpc.NewClient(ct, clientOpts(k)...)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawTransport returns a bare transport to the node, for requests a client
// would never send (a replayed header).
func rawTransport(t *testing.T, n *node) rpc.Transport {
	switch n.tr {
	case overLab:
		return labEnd(n.lab, "raw")
	case overStream:
		_, cfg, _ := tlsConfigs(t)
		tr := rpc.NewStreamTransport(tlsDial(cfg, n.addr))
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	tr := rpc.NewStreamTransport(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", n.addr)
	})
	t.Cleanup(func() { tr.Close() })
	return tr
}

// startStock serves StockTally with a stock net/rpc server until the test
// ends.
func startStock(t *testing.T) string {
	srv := netrpc.NewServer()
	if err := srv.Register(StockTally{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// newProxy puts a fault proxy in front of addr, closed with the test.
func newProxy(t *testing.T, addr string) *faultproxy.Proxy {
	p, err := faultproxy.New(addr, faultproxy.Config{Seed: seed(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// healAfterFirst is a transport that calls heal once the first attempt of
// method has returned: a fault set before the call hits that attempt only.
type healAfterFirst struct {
	rpc.Transport
	method string
	heal   func()
	once   sync.Once
	armed  atomic.Bool
}

func (h *healAfterFirst) RoundTrip(ctx context.Context, req *rpc.Request, reply any) error {
	err := h.Transport.RoundTrip(ctx, req, reply)
	if req.ServiceMethod == h.method && h.armed.Load() {
		h.once.Do(h.heal)
	}
	return err
}

// verdict is the one answer a call's error gives.
type verdict int

const (
	vNil verdict = iota
	vNotExecuted
	vMaybeExecuted
	vApplication
	vUnusable
)

var verdictNames = [...]string{"nil", "ErrNotExecuted", "ErrMaybeExecuted", "ErrApplication", "ErrReplyUnusable"}

func (v verdict) String() string {
	if v < 0 || int(v) >= len(verdictNames) {
		return "no verdict"
	}
	return verdictNames[v]
}

// verdictOf returns err's verdict, failing the test unless err has exactly
// one.
func verdictOf(t *testing.T, err error) verdict {
	t.Helper()
	if err == nil {
		return vNil
	}
	var found []verdict
	for v, target := range map[verdict]error{vNotExecuted: rpc.ErrNotExecuted, vMaybeExecuted: rpc.ErrMaybeExecuted,
		vApplication: rpc.ErrApplication, vUnusable: rpc.ErrReplyUnusable} {
		if errors.Is(err, target) {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Errorf("error has %d verdicts %v, want exactly one: %v", len(found), found, err)
		if len(found) == 0 {
			return -1
		}
	}
	return found[0]
}

// checkGiveUp checks what every failed call without an answer must be: a
// *semantics.GiveUpError of the policy used, naming it, and never
// errors.Is(err, ErrNotSent) when it may have executed.
func checkGiveUp(t *testing.T, err error, v verdict, k semantics.Kind) {
	t.Helper()
	if v != vNotExecuted && v != vMaybeExecuted {
		return
	}
	var gu *semantics.GiveUpError
	if !errors.As(err, &gu) {
		t.Errorf("a call that failed without an answer is not a *semantics.GiveUpError: %T %v", err, err)
		return
	}
	if gu.Policy != k {
		t.Errorf("give-up of policy %v, the call used %v: %v", gu.Policy, k, err)
	}
	if !strings.Contains(err.Error(), k.String()) {
		t.Errorf("give-up does not name the policy %q: %v", k, err)
	}
	if v == vMaybeExecuted && errors.Is(err, rpc.ErrNotSent) {
		t.Errorf("may-have-executed give-up is also ErrNotSent: %v", err)
	}
}

// tried returns how many attempts a give-up made, -1 if err is none.
func tried(err error) int {
	var gu *semantics.GiveUpError
	if errors.As(err, &gu) {
		return gu.Tried
	}
	return -1
}
