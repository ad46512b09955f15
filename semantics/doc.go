// Package semantics is semrpc's failure-semantics layer: what a call
// promises when networks drop requests and replies, servers crash and
// clients retry. It is pure logic, with no sockets and injectable clocks;
// package rpc drives it for every call and every request.
//
// # Failure classes
//
// Every failed attempt of a call is exactly one Class, found with ClassOf
// (errors.Is on the attempt's error finds the class sentinel):
//
//	ClassNotSent        ErrNotSent: the request never reached the server (dial
//	                    refused, connection down before the write). Safe to retry
//	                    under every policy.
//	ClassMaybeExecuted  ErrMaybeExecuted: sent, no reply (timeout, connection lost
//	                    after the write, reply dropped). The method may have run.
//	ClassApplication    ErrApplication: the method ran and returned an error. That
//	                    error is the call's answer; it is never retried.
//	ClassUnusable       ErrReplyUnusable: the method ran, but its reply cannot be
//	                    used (not decodable, too large to send). Never retried.
//	ClassRejected       the server refused the request before running the method
//	                    (ErrStale, ErrSessionExpired, ErrEpochMismatch,
//	                    ErrNotDurable, ErrBadHeader). Never retried as is.
//
// An error without a class is taken as maybe executed, the only safe
// assumption. NotSent, MaybeExecuted and Unusable wrap a transport error
// with its class; Permanent marks an error that ends a call at once under
// every policy (a TLS certificate that does not verify, say); Grouped ties
// the errors of the calls failed by one lost connection, which the retry
// budget charges once.
//
// # Policies
//
// A Policy says how a call is attempted; Runner.Run carries it out.
//
//	NoRetry      exactly one attempt: the method runs zero or one time.
//	AtLeastOnce  retries not-sent and maybe-executed attempts with exponential
//	             backoff and jitter (one backoff per call; 10ms doubling up to
//	             1s, ±50%), at most MaxAttempts sent attempts (default 10;
//	             not-sent attempts are free), while the context lasts and the
//	             Runner's RetryBudget allows (Budget, Finagle-style, by default
//	             in package rpc; TokenBucket, gRPC-style). If it returns nil
//	             the method ran one or more times: use it for idempotent
//	             methods.
//	AtMostOnce   every attempt of a call carries the same Header (client id,
//	             seq) from a Session; attempts are retried until the context
//	             ends (or MaxAttempts, if set). The server's Table runs the
//	             method at most once and answers every duplicate with the first
//	             execution's reply. The retry budget does not apply: the dedup
//	             table makes retries safe, and refusing one would only turn an
//	             answer the caller waits for into a may-have-executed error.
//	ExactlyOnce  AtMostOnce against a server whose completion records are
//	             durable and committed atomically with the service's state, so
//	             the guarantee survives server crashes; a server without them
//	             refuses the call with ErrNotDurable.
//
// Run returns nil on success (a true nil), an application error or an
// unusable reply unchanged, and otherwise a *GiveUpError (GiveUp builds one
// for a call that failed before it was sent). Its Verdict tells the caller
// what is known about the call: ErrMaybeExecuted if any attempt may have
// executed, else ErrNotExecuted, meaning the method definitely did not run.
// Exactly one of errors.Is(err, ErrMaybeExecuted) and errors.Is(err,
// ErrNotExecuted) holds: the class sentinels of the attempts are not
// matched through a give-up, though their causes are. The error lists the
// first four and the last four attempts' errors in order (go-multierror),
// then why the call stopped (the context's error, ErrBudgetExhausted,
// MaxAttempts, a permanent error), and names the policy. Nothing is ever
// silently re-executed.
//
// # Sessions and the dedup table
//
// A client's at-most-once calls share a Session: the ClientID the server's
// Table.Open made for it, the server epoch it was opened against, and a
// sequence number per call.
// Session.Begin assigns the next seq and returns the Header; every retry of
// the call, over any connection, sends Session.Retry(seq), the same client
// and seq; Session.End(seq) ends the call, replied or given up. Each header's
// Ack is the first seq that has not ended, so the server may free every
// reply below it. Begin waits while window (default 1024, never above the
// table's per-session cap) seqs from the first incomplete one are in use,
// which bounds the replies the server keeps for the session.
//
// The server's Table admits each request by its header:
//
//	NEW        first sight of (client, seq): the method runs and its outcome
//	           is recorded until the client acknowledges it;
//	DONE       completed earlier: the recorded reply (or application error) is
//	           the answer, and nothing runs;
//	IN FLIGHT  the original is still running: the duplicate waits for it;
//	STALE      seq is below an ack the client already sent: ErrStale, never
//	           re-run (a late duplicate of a call the client has given up on);
//	unknown    a session the table does not hold (never opened, idle longer
//	           than the lease, evicted or closed), whatever its ack:
//	           ErrSessionExpired. A request never creates a session; only
//	           Table.Open does (and a durable store rebuilding the table);
//	epoch      a header opened against another server epoch, so the server
//	           restarted and lost its table: ErrEpochMismatch.
//
// The last three are rejections: the method did not run for that attempt,
// but an earlier attempt may have, which the verdict reports. A NEW call is
// refused too, not run, while its session holds TableConfig.MaxCalls
// records of calls its client has not acknowledged (ErrWindowExceeded,
// which a client keeping its window never meets) or while the replies kept by its session or
// by the whole table are at their byte budget (ErrReplyBudget); a record
// is never dropped to make room, so a duplicate is always answered from it.
//
// # Durable completion records
//
// A Table forgets everything when its process dies. For exactly-once, a
// Store keeps the records. This package holds only the contract: the
// stores live in packages of their own, so that only their importers link
// their engines. stores/boltstore opens (or creates) one bbolt file,
// rebuilds the table from it (same epoch, sessions with their acks, every
// record not yet acknowledged) and runs each NEW call inside a read-write
// transaction (Store.Execute), where the method writes its own state
// (TxOf) and the call's completion record is written beside it, so both
// commit together before the reply is sent; calls without a header run in
// a transaction too (Store.Transact). A method's error rolls back what it
// wrote, under every policy. Concurrent calls share
// transactions and fsyncs. The server side of this is rpc.WithDurableStore;
// doc/semantics.md has the whole contract.
package semantics
