package rpc

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Server serves registered services over any transport: TCP (Serve,
// ServeConn), labrpc, or a custom transport calling Handle.
type Server struct {
	opts    options
	table   *semantics.Table
	logger  *log.Logger
	durable bool   // the table's records survive restarts (exactly-once)
	domain  string // the exactly-once domain of the table's store, "" for none

	// base is the context every method runs under (with the caller's
	// deadline added): it ends when Close is called, or when Shutdown's
	// context ends before the running calls do.
	base     context.Context
	stopBase context.CancelFunc

	mu       sync.RWMutex // protects services
	services map[string]*service

	inflight   atomic.Int64 // calls inside Handle/execute
	shutting   atomic.Bool
	rejected   atomic.Uint64 // requests refused before running
	connCount  atomic.Int64
	refusing   chan struct{} // connections being refused for the cap (serverlimits.go)
	refused    atomic.Uint64 // connections refused for the cap
	refusedLog atomic.Int64  // when the last refusal was logged (Unix ns)
	watch      inlineWatch   // inlinewatch.go

	logs logLimiter // loglimit.go: lines about what peers did

	lmu       sync.Mutex // protects following
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	others    map[*otherConn]struct{} // codec.go: ServeCodec's, and those not yet sniffed
	closed    bool
	connWG    sync.WaitGroup // connections being served, by Serve or ServeConn
}

// ServerOption is an Option accepted by NewServer; the name exists for the
// documentation of server-only options.
type ServerOption = Option

// NewServer returns a server with no services. Options: WithMaxMessageSize,
// WithServerInterceptor, WithTable, WithDurableStore, WithLogger,
// WithMaxConcurrentPerConn, WithIntrospection, WithJSONCodec, WithDebugAccess,
// and the limits that make a default server safe to expose: WithReadTimeout,
// WithWriteTimeout, WithIdleTimeout, WithHandshakeTimeout, WithMaxConnections.
func NewServer(opts ...Option) *Server {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		opts:      o,
		services:  make(map[string]*service),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*serverConn]struct{}),
		others:    make(map[*otherConn]struct{}),
		logger:    o.logger,
	}
	s.watch.kick = make(chan struct{}, 1)
	s.refusing = make(chan struct{}, maxRefusing)
	if s.logger == nil {
		s.logger = log.Default()
	}
	s.table = o.table
	if s.table == nil {
		s.table = semantics.NewTable(nil)
	}
	s.durable = s.table.Durable()
	s.domain = domainOf(s.table, o.durableStore)
	s.base, s.stopBase = context.WithCancel(context.Background())
	return s
}

// callContext returns the context a method runs under: the server's, ended
// by the caller's deadline when the request carries one (timeout, in
// nanoseconds). A lost connection never ends it.
func (s *Server) callContext(timeout int64) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeout(s.base, time.Duration(timeout))
	}
	return s.base, func() {}
}

// WithServerInterceptor appends an interceptor to the server's chain; the
// first added runs outermost. It sees every request that reaches a method,
// including duplicates answered from the at-most-once table, and the
// requests the server core answers itself: the session handshake
// ("_semrpc.Open", whose refusal opens no session), its end
// ("_semrpc.Close", whose refusal closes nothing) and the introspection
// methods, each with the caller's metadata in its context.
func WithServerInterceptor(i Interceptor) Option {
	return func(o *options) { o.serverInterceptors = append(o.serverInterceptors, i) }
}

// WithTable gives the server its at-most-once table (for a chosen lease,
// epoch, clock or a durable store). By default each server has its own
// in-memory table.
func WithTable(t *semantics.Table) Option {
	return func(o *options) { o.table = t }
}

// WithMaxConcurrentPerConn bounds the calls running at once for one
// connection (default DefaultMaxConcurrentPerConn); beyond it the server stops reading that
// connection until a call finishes.
func WithMaxConcurrentPerConn(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConcurrent = n
		}
	}
}

// Table returns the server's at-most-once table.
func (s *Server) Table() *semantics.Table { return s.table }

// Register publishes the exported methods of rcvr under the name of its
// concrete type. Methods look like net/rpc's,
//
//	func (t *T) Method(args A, reply *R) error
//
// or like the classic lab network's, with no result, and may take a
// context.Context first. That context ends at the caller's deadline (which
// travels with the request), when Close is called, or when Shutdown gives
// up waiting; never because the caller's connection was lost. Other methods are skipped; a receiver with none is an error.
//
// On a server with a durable store (WithDurableStore, or WithTable with a
// durable table) every method must take a context.Context first, through
// which it writes in the store's transaction; Register refuses a service
// with a method that does not (ErrNeedsContext, naming the methods), unless
// OutsideTransaction declares that method fine outside the transaction.
func (s *Server) Register(rcvr any, opts ...RegisterOption) error {
	return s.register(rcvr, "", false, opts)
}

// RegisterName is like Register but uses name for the service.
func (s *Server) RegisterName(name string, rcvr any, opts ...RegisterOption) error {
	return s.register(rcvr, name, true, opts)
}

func (s *Server) register(rcvr any, name string, useName bool, opts []RegisterOption) error {
	if useName && (name == "" || strings.Contains(name, ".")) {
		return fmt.Errorf("rpc: invalid service name %q", name)
	}
	svc, err := newService(rcvr, name, useName)
	if err != nil {
		return err
	}
	var ro registerOptions
	for _, opt := range opts {
		opt(&ro)
	}
	if err := s.checkDurable(svc, &ro); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.services[svc.name]; dup {
		return fmt.Errorf("rpc: service already defined: %s", svc.name)
	}
	s.services[svc.name] = svc
	return nil
}

// The session handshake and its end, served by the core itself.
var (
	openMethodType = &methodType{
		name:      openMethod,
		argType:   reflect.TypeOf(OpenArgs{}),
		replyType: reflect.TypeOf(&OpenReply{}),
	}
	closeMethodType = &methodType{
		name:      closeMethod,
		argType:   reflect.TypeOf(CloseArgs{}),
		replyType: reflect.TypeOf(&CloseReply{}),
	}
)

func (s *Server) lookup(serviceMethod string) (*methodType, error) {
	switch serviceMethod {
	case openMethod:
		return openMethodType, nil
	case closeMethod:
		return closeMethodType, nil
	case healthMethod, methodsMethod:
		if m := s.builtinMethod(serviceMethod); m != nil {
			return m, nil
		}
	case JSONCallMethod:
		if !s.opts.noJSON {
			return jsonCallMethodType, nil
		}
	}
	dot := strings.LastIndex(serviceMethod, ".")
	if dot < 0 {
		return nil, reject(CodeUnknownMethod, "rpc: service/method request ill-formed: %s", quoteName(serviceMethod))
	}
	sname, mname := serviceMethod[:dot], serviceMethod[dot+1:]
	s.mu.RLock()
	svc := s.services[sname]
	s.mu.RUnlock()
	if svc == nil {
		return nil, reject(CodeUnknownMethod, "rpc: can't find service %s", quoteName(serviceMethod))
	}
	m := svc.methods[mname]
	if m == nil {
		return nil, reject(CodeUnknownMethod, "rpc: can't find method %s", quoteName(serviceMethod))
	}
	return m, nil
}

// open creates an at-most-once session, after ending those the client says
// it is done with. It runs at the end of the interceptor chain, as a
// method does.
func (s *Server) open(args *OpenArgs) (*OpenReply, error) {
	for _, id := range args.Close {
		s.table.Close(id)
	}
	id, err := s.table.Open()
	if err != nil {
		return nil, err
	}
	rep := &OpenReply{
		Epoch:    s.table.Epoch(),
		Durable:  s.durable,
		Client:   id,
		Lease:    int64(s.table.Lease()),
		MaxCalls: s.table.MaxCalls(),
	}
	rep.Domain = s.domain
	return rep, nil
}

// domainOf returns the exactly-once domain of t's durable store: that of
// the store itself, or of st, the store given to WithDurableStore, whose
// Table t is (a store that wraps another, adding a Domain, hands out the
// inner store's table).
func domainOf(t *semantics.Table, st semantics.Store) string {
	if ds, ok := t.Store().(semantics.DomainStore); ok {
		return ds.Domain()
	}
	if ds, ok := st.(semantics.DomainStore); ok && st.Table() == t {
		return ds.Domain()
	}
	return ""
}

// ArgsDecoder decodes one request's arguments into v, a pointer to a fresh
// value of the method's argument type.
type ArgsDecoder interface {
	DecodeArgs(v any) error
}

// Handle is the server core's entry point for transports other than TCP: it
// finds the method, decodes the arguments with args, applies the request's
// semantics (the at-most-once table when h is not nil) and runs the method.
// It returns the reply to send back, or an error for EncodeError. The reply
// may be shared with duplicates of the same call: encode it, never modify it.
func (s *Server) Handle(ctx context.Context, serviceMethod string, h *semantics.Header, args ArgsDecoder) (reply any, err error) {
	m, err := s.lookup(serviceMethod)
	if err != nil {
		s.rejected.Add(1)
		return nil, err
	}
	ptr, pass := m.newArgs()
	if err := args.DecodeArgs(ptr); err != nil {
		s.rejected.Add(1)
		return nil, reject(CodeBadArguments, "rpc: decoding arguments of %s: %v", serviceMethod, err)
	}
	if mc, ok := args.(MetadataCarrier); ok && (mc.IncomingMetadata() != nil || s.seesContext(m)) {
		var sc *serverCall
		if sc, err = newServerCall(ctx, mc.IncomingMetadata(), peerSource{carrier: mc}); err != nil {
			s.rejected.Add(1)
			return nil, err
		}
		ctx = sc
		defer func() { mc.SetReplyMetadata(sc.finish()) }()
	}
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if !s.seesContext(m) && h == nil && !s.durable {
		// Nothing reads the method's context: the method takes none, no
		// interceptor and no table waits on it. Joining it with the
		// server's would cost four allocations per call for nothing.
		return s.execute(ctx, m, h, ptr, pass)
	}
	// The method's context ends with the transport's (the caller's
	// deadline, say) and with the server's own: Close, or a Shutdown that
	// stopped waiting.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	return s.execute(ctx, m, h, ptr, pass)
}

// execute runs one decoded request through the interceptors, then answers
// it (dispatch). The caller counts the request in s.inflight first
// (Shutdown waits for that count), which makes the shutting-down check
// below safe.
func (s *Server) execute(ctx context.Context, m *methodType, h *semantics.Header, argPtr any, argv reflect.Value) (any, error) {
	if m == jsonCallMethodType {
		return s.executeJSON(ctx, h, argPtr.(*jsonCallArgs))
	}
	if s.shutting.Load() {
		s.rejected.Add(1)
		return nil, reject(CodeShuttingDown, "rpc: server shutting down; %s not run", m.name)
	}
	if len(s.opts.serverInterceptors) == 0 {
		return s.dispatch(ctx, m, h, argPtr, argv)
	}
	info := &CallInfo{ServiceMethod: m.name, Header: h, Args: argPtr}
	err := chain(s.opts.serverInterceptors, func(ctx context.Context, ci *CallInfo) error {
		var err error
		ci.Reply, err = s.dispatch(ctx, m, ci.Header, argPtr, argv)
		return err
	})(ctx, info)
	return info.Reply, err
}

// dispatch is the end of the interceptor chain: the session handshake and
// its end are answered by the server core, every other request goes
// through dedup. So an interceptor that refuses a request refuses it
// whatever it is: a refused Open opens no session.
func (s *Server) dispatch(ctx context.Context, m *methodType, h *semantics.Header, argPtr any, argv reflect.Value) (any, error) {
	switch m {
	case openMethodType:
		return s.open(argPtr.(*OpenArgs))
	case closeMethodType:
		ids := argPtr.(*CloseArgs).IDs
		for _, id := range ids {
			s.table.Close(id)
		}
		return &CloseReply{Closed: len(ids)}, nil
	}
	return s.dedup(ctx, m, h, argv)
}

// dedup applies the at-most-once table when the request carries a header.
// The introspection methods (m.builtin) skip the table: they change
// nothing, so a duplicate may run them again; they have been through the
// interceptors already (dispatch).
func (s *Server) dedup(ctx context.Context, m *methodType, h *semantics.Header, argv reflect.Value) (any, error) {
	if m.builtin != nil {
		return m.builtin(s), nil
	}
	if h == nil {
		if s.durable {
			return s.transactDurable(ctx, m, argv)
		}
		return s.invoke(ctx, m, argv)
	}
	tk, err := s.table.Begin(ctx, *h)
	if err != nil {
		if semantics.ClassOf(err) == semantics.ClassMaybeExecuted && !errors.Is(err, semantics.ErrMaybeExecuted) {
			// Unclassified (the request's context ended while it waited
			// for the original, or the original was aborted): the safe
			// verdict, never "application error".
			err = semantics.MaybeExecuted(err)
		}
		return nil, err
	}
	if !tk.Run() {
		out := tk.Cached()
		if s.durable {
			return storedOutcome(m, out)
		}
		return replayReplyMetadata(ctx, out.Reply), out.Err
	}
	if s.durable {
		return s.executeDurable(ctx, tk, m, h, argv)
	}
	if s.base.Err() != nil {
		// Stopped before the method started: nothing ran, a retry may run
		// it (on a server that is up).
		s.table.Abort(tk, nil)
		return nil, reject(CodeShuttingDown, "rpc: server stopped; %s not run", m.name)
	}
	reply, err := s.invoke(ctx, m, argv)
	// A method interrupted by the server's own context may have had its
	// effects: its outcome is recorded as "may have executed", never taken
	// back, so that no duplicate runs it again (a table can outlive its
	// server, given to another with WithTable). The record counts against
	// the table's reply budgets at its estimated size (replysize.go).
	kept := keepReplyMetadata(ctx, reply)
	s.table.Finish(tk, semantics.Outcome{Reply: kept, Err: err, Size: replySize(kept, err)})
	return reply, err
}

// errInterrupted is wrapped by the error of a method that failed after its
// context ended other than at the caller's deadline: the server's Close, a
// Shutdown that stopped waiting, or the transport's own context.
var errInterrupted = errors.New("rpc: the method was stopped before it answered")

// propagatePanicsKey marks a context made by PropagatePanics.
type propagatePanicsKey struct{}

// PropagatePanics returns a context under which Handle does not recover a
// panic in the method: the panic crashes the program with the method's
// stack, as the classic lab network does. labrpc uses it for ClientEnd.Call;
// requests arriving over TCP never carry it, so servers keep recovering.
func PropagatePanics(ctx context.Context) context.Context {
	return context.WithValue(ctx, propagatePanicsKey{}, true)
}

// invoke calls the method. A panic in the method becomes an application
// error and a log line and the server keeps serving, unless the request's
// context comes from PropagatePanics.
func (s *Server) invoke(ctx context.Context, m *methodType, argv reflect.Value) (reply any, err error) {
	replyv := m.newReply()
	start := time.Now()
	defer func() {
		// Without recover the panic goes on with the method's frames on
		// the stack.
		if ctx.Value(propagatePanicsKey{}) == nil {
			if p := recover(); p != nil {
				s.logPeer("rpc: method %s panicked: %s\n%s", m.name, logText(p), debug.Stack())
				err = ServerError(fmt.Sprintf("rpc: method %s panicked: %v", m.name, p))
			}
		}
		m.stats.record(time.Since(start), err != nil)
	}()
	var out []reflect.Value
	if m.hasCtx {
		out = m.fn.Call([]reflect.Value{m.rcvr, reflect.ValueOf(ctx), argv, replyv})
	} else {
		out = m.fn.Call([]reflect.Value{m.rcvr, argv, replyv})
	}
	if m.hasError {
		if e := out[0].Interface(); e != nil {
			switch {
			case m.hasCtx && errors.Is(ctx.Err(), context.DeadlineExceeded) && s.base.Err() == nil:
				// Its context ended at the caller's deadline: that is no
				// answer, and the caller has stopped waiting anyway.
				return nil, semantics.MaybeExecuted(fmt.Errorf("rpc: %s: the caller's deadline passed while it ran (%v): %w", m.name, e, context.DeadlineExceeded))
			case s.base.Err() != nil || (m.hasCtx && ctx.Err() != nil):
				// Stopped by its server (Close, a Shutdown that stopped
				// waiting) or its transport: no answer either.
				return nil, semantics.MaybeExecuted(fmt.Errorf("%w: %s: %v", errInterrupted, m.name, e))
			}
			return replyv.Interface(), ServerError(e.(error).Error())
		}
	}
	return replyv.Interface(), nil
}

// Serve accepts connections on l and serves each on its own goroutine. It
// returns ErrServerClosed after Shutdown or Close, or the listener's error.
func (s *Server) Serve(l net.Listener) error {
	s.lmu.Lock()
	if s.closed {
		s.lmu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.lmu.Unlock()
	defer func() {
		s.lmu.Lock()
		delete(s.listeners, l)
		s.lmu.Unlock()
	}()
	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if retryableAccept(err) {
				// Out of descriptors, say: the peers that hold them will
				// leave, and new ones must then be served (net/http waits
				// the same way, 5 ms doubling to 1 s).
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger.Printf("rpc: accept: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.atCapacity() {
			s.refuseOverCap(conn)
			continue
		}
		// codec.go: JSON-RPC or gob, told by the first bytes (a TLS
		// hello on a plain listener is answered with an alert whether or
		// not JSON is on).
		if !s.sniff(conn) {
			return ErrServerClosed
		}
	}
}

// retryableAccept reports whether an accept error is one a listener
// recovers from: a timeout, or a shortage of descriptors, buffers or
// memory, or a connection that died in the accept queue.
func retryableAccept(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var tmp interface{ Temporary() bool }
	return errors.As(err, &tmp) && tmp.Temporary()
}

func (s *Server) isClosed() bool {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.closed
}

// Shutdown stops the server gracefully: it closes the listeners, tells
// every connection's client that the server is going away (a semrpc client
// sends no new calls on it and closes it once its calls are answered),
// answers requests that still arrive with ErrShuttingDown (not executed),
// waits for running calls to finish and for clients to close (at most
// goAwayGrace), then closes every connection.
//
// If ctx ends first, Shutdown ends the context of the methods still
// running, closes everything and returns ctx's error by ctx's deadline,
// whatever the methods do; a method that ignores its context keeps its
// goroutine until it returns (its reply is then dropped).
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.closeListeners()
	// The notices are written on their own goroutines: a peer that does
	// not read must not hold Shutdown past its deadline (closing the
	// connections below ends such a write).
	var notices sync.WaitGroup
	for _, c := range s.connList() {
		notices.Add(1)
		go func() {
			defer notices.Done()
			c.sendGoAway()
		}()
	}
	s.noticeOthers(&notices) // codec.go
	defer notices.Wait()
	err := s.waitIdle(ctx)
	if err == nil {
		s.waitConnsClosed(ctx, goAwayGrace)
	}
	s.closeConns()
	if err != nil {
		s.stopBase() // after the connections: the stopped methods' answers are lost with them
	}
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	s.stopBase()
	return err
}

// goAwayGrace bounds how long Shutdown waits for clients to close their
// connections after the notice (stock net/rpc clients never do).
const goAwayGrace = 500 * time.Millisecond

// Close stops the server at once: listeners and connections are closed,
// the context of running methods ends, and their replies are lost. It
// returns when the methods still running have returned.
func (s *Server) Close() error {
	s.shutting.Store(true)
	s.closeListeners()
	s.closeConns()
	s.stopBase() // after the connections: the stopped methods' answers are lost with them
	s.connWG.Wait()
	return nil
}

func (s *Server) closeListeners() {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
}

func (s *Server) connList() []*serverConn {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

func (s *Server) closeConns() {
	for _, c := range s.connList() {
		c.close()
	}
	s.closeOthers() // codec.go
}

// waitConnsClosed polls until every connection has ended, for at most
// grace or until ctx ends.
func (s *Server) waitConnsClosed(ctx context.Context, grace time.Duration) {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.connCount.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// waitIdle polls until no call is running, like net/http's Shutdown.
func (s *Server) waitIdle(ctx context.Context) error {
	interval := time.Millisecond
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		interval = min(2*interval, 100*time.Millisecond)
		timer.Reset(interval)
	}
	return nil
}

// ServerStats are the server's counters.
type ServerStats struct {
	Methods     map[string]MethodStats // by "Service.Method"; executions only
	Rejected    uint64                 // requests refused before running
	Connections int64                  // open connections
	Table       semantics.TableStats
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	st := ServerStats{
		Methods:     make(map[string]MethodStats),
		Rejected:    s.rejected.Load(),
		Connections: s.connCount.Load(),
		Table:       s.table.Stats(),
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, svc := range s.services {
		for _, m := range svc.methods {
			st.Methods[m.name] = m.stats.snapshot()
		}
	}
	return st
}
