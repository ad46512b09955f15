// Package rpc is net/rpc with what it never had: contexts, redial, limits,
// graceful shutdown, interceptors, statistics, and selectable failure
// semantics (package semantics).
//
// # Services
//
// Services are written as for net/rpc and registered with Register or
// RegisterName. A method is published if it is exported and looks like
//
//	func (t *T) MethodName(args A, reply *R) error
//	func (t *T) MethodName(args A, reply *R)                           // classic lab style
//	func (t *T) MethodName(ctx context.Context, args A, reply *R) error // with a context
//
// An error returned by a method reaches the caller as a ServerError; a
// panic in a method becomes such an error and a log line, and the server
// keeps serving. A method's context ends at the caller's deadline (it
// travels with the request), at Close, or when Shutdown stops waiting;
// never because the caller's connection was lost, so a lost connection is
// never recorded as a call's answer.
//
// # The wire
//
// Over TCP the server and client speak net/rpc's gob protocol, with extra
// header fields that stock peers ignore: a stock net/rpc client can call a
// Server, and a Client can call a stock net/rpc server (plain calls; the
// at-most-once policies need a semrpc server and say so). Every message
// read is bounded (DefaultMaxMessageSize, 4 MiB, unless WithMaxMessageSize
// says otherwise): an oversized request or malformed bytes get a clear error
// and close only their own connection. Messages are encoded whole before they
// are written, so arguments that cannot be encoded fail their call alone (not
// sent), and a reply that cannot be encoded or is over the limit is not sent:
// the caller learns that the method ran and its reply is unusable.
//
// # Facing hostile peers
//
// A Server with default options may be reached by peers it does not trust.
// Each message is checked against the gob types its stream defined before
// it is decoded, so a declared count is believed only as far as the bytes
// that follow can hold, and nesting and type definitions are bounded; a
// message is held as its bytes arrive, never at its declared length. Reads
// (WithReadTimeout, 30 s once a message has begun), writes
// (WithWriteTimeout, 30 s), idle connections (WithIdleTimeout, 5 min: the
// client is told first, and reconnects) and TLS handshakes
// (WithHandshakeTimeout, 10 s) have deadlines; connections
// (WithMaxConnections, 4,096) and calls per connection
// (WithMaxConcurrentPerConn, 128) have caps; Serve retries accept errors such
// as running out of descriptors. Sessions open through the server's
// interceptors, and the replies kept for at-most-once calls have a memory
// budget (semantics.TableConfig). doc/semantics.md (§11) states each bound
// and the test that proves it; doc/security.md measures each attack.
//
// # Calls and their failures
//
// Client.Call takes a context: when it ends, the call returns at once with
// an error wrapping the context's error and the client stays usable. Dial
// does no I/O (unless WithEagerDial): the first call connects, a client may
// start before its server, and a lost connection is redialled. Every error
// says what became of the call, with one check each:
//
//	errors.Is(err, rpc.ErrApplication)   // the method ran and returned an error (a ServerError)
//	errors.Is(err, rpc.ErrReplyUnusable) // the method ran; its reply could not be delivered
//	errors.Is(err, rpc.ErrNotExecuted)   // the call definitely did not run
//	errors.Is(err, rpc.ErrMaybeExecuted) // it was sent and may have run
//
// A refusal is a *RejectedError whose Code says why (errors.As). How a
// call is retried is chosen with WithSemantics, at Dial or NewClient for
// every call or on one Call:
//
//	semantics.NoRetry()     // one attempt (the default); fails fast when not connected
//	semantics.AtLeastOnce() // retries with backoff and jitter, under a retry budget
//	semantics.AtMostOnce()  // retries carry the same session and sequence number;
//	                        // the server's table never runs a call twice
//	semantics.ExactlyOnce() // at-most-once against a server with durable records
//
// Retrying policies wait for a server that is down or restarting (attempts
// that were not sent are free) until the call's context ends, bounded by
// DefaultRetryTimeout when it has no deadline. Permanent failures (a bad
// address, a TLS certificate that does not verify, an unknown method) end
// a call at once under every policy.
//
// # Exactly-once
//
// A server made with WithDurableStore keeps its completion records in a
// durable store and commits each call's record in the same transaction as
// what its method wrote, so ExactlyOnce calls hold across server crashes
// and restarts. The store shipped is package stores/boltstore (one bbolt
// file; only programs that import it link bbolt); any semantics.Store will
// do (doc/stores.md). Each method of such a server takes a context first
// and writes through the call's transaction, found in that context;
// Register refuses a method without a context (ErrNeedsContext) unless
// OutsideTransaction declares it fine outside the transaction.
//
//	st, err := boltstore.Open("data/bank.db", nil) // creates data/ if missing
//	srv := rpc.NewServer(rpc.WithDurableStore(st))
//	err = srv.Register(Bank{})
//
//	func (Bank) Deposit(ctx context.Context, args DepositArgs, reply *Balance) error {
//		tx := boltstore.TxOf(ctx) // *bbolt.Tx: commits with the call's record
//		...
//	}
//
//	c, err := rpc.Dial(ctx, "tcp", addr, rpc.WithSemantics(semantics.ExactlyOnce()))
//
// ExampleWithDurableStore runs it end to end, with a restart.
//
// # Transports
//
// A Client works through a Transport. Dial uses the TCP one;
// NewStreamTransport runs the same wire over any net.Conn (TLS, net.Pipe);
// labrpc's *ClientEnd is the simulated lab network. Custom transports hand
// requests to Server.Handle, the single entry point of the server core, so
// the at-most-once table behaves the same whatever carries the bytes.
//
// # Several servers
//
// DialCluster returns one Client over several servers. Calls go to the
// server with the fewest of the client's calls in progress, ties broken in
// rotation (WithBalancer(RoundRobin) for plain turns); a server that
// refuses connections leaves the rotation and is probed back with backoff,
// and an attempt that was not sent moves to another server at once, under
// every policy. At-most-once and exactly-once calls are balanced too: the
// client holds a session with each server, and a call runs in the session
// of the server its first attempt went to. Once it may have run there, it
// is sent only to servers that can see that session's records: its own,
// or another of the same exactly-once domain (servers sharing one durable
// store that says so, a semantics.DomainStore). Client.Servers tells what
// the client knows of each server.
//
//	c, err := rpc.DialCluster(ctx, "tcp", []string{"10.0.0.1:7000", "10.0.0.2:7000"})
//
// # TLS
//
// WithTLS makes Dial and DialCluster connect over TLS; ListenTLS is the
// server's listener (mutual TLS with ClientAuth and ClientCAs in its
// config). A certificate that does not verify, on either side, fails the
// call at once as not executed, and so does a client and server of which
// only one speaks TLS (when the server has its JSON codec on, the
// default): each is told what is wrong. A server that refuses the client's
// certificate, or its lack of one, is reported as refusing the TLS
// connection (ErrRejected), never as a lost connection, even under TLS 1.3
// where its alert comes after the handshake.
//
//	l, err := rpc.ListenTLS("tcp", ":7000", &tls.Config{Certificates: certs})
//	go srv.Serve(l)
//	c, err := rpc.Dial(ctx, "tcp", "db1:7000", rpc.WithTLS(&tls.Config{RootCAs: pool}))
//
// # Other codecs, HTTP, and the semrpc command
//
// Serve answers JSON-RPC 1.0 (net/rpc/jsonrpc) on the gob port: a
// connection that opens as a JSON object is served with the JSON codec
// (WithJSONCodec(false) turns it off). Server.ServeCodec serves any
// net/rpc ServerCodec; Server.HandleHTTP, Server.ServeHTTP and DialHTTP
// carry the wire over HTTP CONNECT as net/rpc does, with a debug page
// (Server.DebugHandler) that answers loopback peers only unless
// WithDebugAccess says otherwise. Calls through a stock codec are plain
// calls (no at-most-once table, no deadline from the caller).
//
// Every server answers _semrpc.Health and _semrpc.Methods (HealthMethod,
// MethodsMethod) unless WithIntrospection(false); Client.Health and
// Client.Methods call them. Client.CallJSON calls a method with JSON
// arguments over the ordinary wire (JSONCallMethod, off with the JSON
// codec), decoded strictly by the server, with every policy. The command
// rpc/cmd/semrpc (health, list, call) uses it, over TLS with -tls or -ca;
// its exit status says whether a call ran. Package rpc/metrics publishes Server.Stats and Client.Stats through
// expvar, and rpc/metrics/promstats as a Prometheus collector.
//
// # Shutdown
//
// Server.Shutdown stops accepting and tells every connection's client that
// the server is going away (a semrpc client sends nothing more on it and
// redials for its next call); requests that arrive meanwhile are answered
// ErrShuttingDown (not executed, sent again by retrying policies). It waits
// for running calls, then closes the connections; Serve returns
// ErrServerClosed. Shutdown returns by its context's deadline whatever the
// methods do: then it ends their context, and a method that ignores it
// keeps its goroutine until it returns. Close returns once running methods
// have returned. No goroutine of a Client outlives its Close.
package rpc
