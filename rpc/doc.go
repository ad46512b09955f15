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
// # Transports
//
// A Client works through a Transport. Dial uses the TCP one;
// NewStreamTransport runs the same wire over any net.Conn (TLS, net.Pipe);
// labrpc's *ClientEnd is the simulated lab network. Custom transports hand
// requests to Server.Handle, the single entry point of the server core, so
// the at-most-once table behaves the same whatever carries the bytes.
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
