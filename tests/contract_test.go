package tests

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/semrpc/semrpc/internal/testwait"
	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/labrpc/labtest"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/tests/faultproxy"
)

// The contract suite: each row is one failure, run under every policy and
// over every transport where it applies, and proves one sentence of the
// contract (its rule). Every cell asserts
//
//   - the call's verdict: nil, or exactly one of ErrNotExecuted,
//     ErrMaybeExecuted, ErrApplication, ErrReplyUnusable;
//   - how many times the method ran (the Tally service counts);
//   - for a give-up, that it is a *semantics.GiveUpError of the policy
//     used, whose text names that policy, and that it is never ErrNotSent
//     when it may have executed (ruleVerdict).
//
// Exactly-once cells run against a durable server (a bolt store) unless
// the row says otherwise.

// ruleVerdict is checked by every cell of every row.
const ruleVerdict = "Every failed call has exactly one verdict: ErrNotExecuted, ErrMaybeExecuted, ErrApplication or ErrReplyUnusable. " +
	"A call that fails without an answer is a *semantics.GiveUpError whose text names the policy it ran under; " +
	"it is ErrNotExecuted only if no attempt may have run, and never ErrNotSent when it may have executed."

// want is what a cell expects.
type want struct {
	v     verdict
	runs  int64           // executions of the method under test
	is    []error         // errors.Is must hold for each
	class semantics.Class // if set, err is one attempt's error: its class, instead of a verdict
}

// anyRuns is a want.runs that is not checked.
const anyRuns = -1

// vAny is a want.v that checks only that the error has one verdict and,
// for a give-up, names its policy: the row pins the verdict elsewhere.
const vAny verdict = 100

// contractRow is one failure of the contract.
type contractRow struct {
	name  string
	rule  string
	over  []transport
	kinds []semantics.Kind // nil: all four
	// durable says whether a cell's server keeps a durable store; nil
	// means for exactly-once only.
	durable func(k semantics.Kind) bool
	run     func(c *cell) error
	want    func(tr transport, k semantics.Kind) want
	// bugs names the library bugs that make the row fail over a
	// transport; its cells there are named "<transport>_BUG_<name>" so
	// they are easy to find. Remove the entry once the bug is fixed.
	bugs map[transport]string
}

// cell is one row × transport × policy.
type cell struct {
	*testing.T
	tr      transport
	kind    semantics.Kind
	durable bool
	lab     *labrpc.Network
	ctx     context.Context // every call's context unless the row says otherwise
	n       *node           // the server, if the row made one
	base    int64           // runs before the call under test
	frozen  *int64          // the call's runs, once later calls may run more
}

// newNode makes the cell's server (not started).
func (c *cell) newNode(lease time.Duration) *node {
	c.n = newNode(c.T, c.tr, c.durable, lease, c.lab)
	c.Cleanup(c.n.tally.releaseHold) // registered after the node's stop: runs first
	return c.n
}

// client returns the cell's client of its node.
func (c *cell) client() *rpc.Client {
	return newClient(c.T, c.tr, c.kind, c.n.addr, c.lab, nil)
}

// clientVia returns a client that reaches its node through addr (a proxy);
// for labrpc, through wrap(end).
func (c *cell) clientVia(addr string, wrap func(rpc.Transport) rpc.Transport) *rpc.Client {
	return newClient(c.T, c.tr, c.kind, addr, c.lab, wrap)
}

// mark starts counting the runs of the call under test.
func (c *cell) mark() { c.base = c.n.tally.runs.Load() }

// runs is how many times the method ran since mark (until freeze).
func (c *cell) runs() int64 {
	switch {
	case c.frozen != nil:
		return *c.frozen
	case c.n == nil:
		return 0
	}
	return c.n.tally.runs.Load() - c.base
}

// freeze fixes the runs of the call under test before the row makes more
// calls.
func (c *cell) freeze() {
	n := c.runs()
	c.frozen = &n
}

// incr calls Tally.Incr(id) and returns the reply.
func (c *cell) incr(cl *rpc.Client, id int64) (TallyReply, error) {
	var r TallyReply
	err := cl.Call(c.ctx, "Tally.Incr", TallyArgs{ID: id}, &r)
	return r, err
}

// warmUp makes n calls that must succeed (a connection, a session).
func (c *cell) warmUp(cl *rpc.Client, n int) {
	c.Helper()
	for i := 0; i < n; i++ {
		if _, err := c.incr(cl, int64(1000+i)); err != nil {
			c.Fatalf("warm-up call: %v", err)
		}
	}
}

// followUp checks that a call made after the failure succeeds and runs
// once.
func (c *cell) followUp(cl *rpc.Client, what string) {
	c.Helper()
	before := c.n.tally.runs.Load()
	if _, err := c.incr(cl, 2000); err != nil {
		c.Errorf("%s: a later call failed: %v", what, err)
		return
	}
	if n := c.n.tally.runs.Load() - before; n != 1 {
		c.Errorf("%s: a later call ran %d times", what, n)
	}
}

// outcome is what a cell's call came to.
type outcome struct {
	err  error
	runs int64
}

func TestContract(t *testing.T) {
	for _, r := range contractRows() {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			// Cells run concurrently (t.Run from several goroutines):
			// most of their time is spent waiting for servers and leases,
			// and -parallel would otherwise run two at a time.
			var wg sync.WaitGroup
			for _, tr := range r.over {
				name := string(tr)
				if bug := r.bugs[tr]; bug != "" {
					name += "_BUG_" + bug
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					t.Run(name, func(t *testing.T) {
						var kwg sync.WaitGroup
						for _, k := range r.kindList() {
							kwg.Add(1)
							go func() {
								defer kwg.Done()
								t.Run(k.String(), func(t *testing.T) {
									if tr != overLab {
										runCell(t, r, tr, k)
										return
									}
									// Over the lab network the cell runs in
									// virtual time, beside the others.
									labtest.Virtual(t, func(t *testing.T) { runCell(t, r, tr, k) }, labtest.Concurrent())
								})
							}()
						}
						kwg.Wait()
					})
				}()
			}
			wg.Wait()
		})
	}
}

func (r contractRow) kindList() []semantics.Kind {
	if r.kinds == nil {
		return allKinds
	}
	return r.kinds
}

func runCell(t *testing.T, r contractRow, tr transport, k semantics.Kind) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rule: %s", r.rule)
			t.Logf("and every row: %s", ruleVerdict)
		}
	})
	c := &cell{T: t, tr: tr, kind: k, durable: k == semantics.KindExactlyOnce}
	if r.durable != nil {
		c.durable = r.durable(k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c.ctx = ctx
	if tr == overLab {
		c.lab = newLab(t)
	}
	err := r.run(c)
	w := r.want(tr, k)
	if c.frozen == nil && w.runs > 0 {
		// A call that gave up before its method finished: let the method
		// finish (on a durable server, commit) before counting.
		testwait.Until(2*time.Second, func() bool { return c.runs() >= w.runs })
	}
	out := outcome{err: err, runs: c.runs()}
	switch {
	case w.v == vAny:
		checkGiveUp(t, out.err, verdictOf(t, out.err), k)
	case w.class != 0:
		if cl := semantics.ClassOf(out.err); cl != w.class {
			t.Errorf("class %v, want %v: %v", cl, w.class, out.err)
		}
	default:
		v := verdictOf(t, out.err)
		if v != w.v {
			t.Errorf("verdict %v, want %v: %v", v, w.v, out.err)
		}
		checkGiveUp(t, out.err, v, k)
	}
	for _, target := range w.is {
		if !errors.Is(out.err, target) {
			t.Errorf("error is not %v: %v", target, out.err)
		}
	}
	if w.runs != anyRuns && out.runs != w.runs {
		t.Errorf("the method ran %d times, want %d (error: %v)", out.runs, w.runs, out.err)
	}
}

// byKind gives each policy its expectation.
func byKind(noRetry, atLeast, atMost, exactly want) func(transport, semantics.Kind) want {
	return func(_ transport, k semantics.Kind) want {
		return [...]want{noRetry, atLeast, atMost, exactly}[k]
	}
}

// same gives every policy one expectation.
func same(w want) func(transport, semantics.Kind) want {
	return func(transport, semantics.Kind) want { return w }
}

var (
	everywhere = []transport{overTCP, overStream, overLab}
	wire       = []transport{overTCP, overStream}
	onceKinds  = []semantics.Kind{semantics.KindAtMostOnce, semantics.KindExactlyOnce}
)

func never(semantics.Kind) bool  { return false }
func always(semantics.Kind) bool { return true }

// The lease of the lease-expiry row, and how long its link stays down.
const (
	shortLease = 300 * time.Millisecond
	linkDown   = 2 * shortLease
)

func contractRows() []contractRow {
	return []contractRow{
		{
			name: "RefusedDial",
			rule: "A call to an address where nothing listens is never sent: NoRetry fails at once, not executed; " +
				"a retrying policy waits for a server until the call's context ends, then gives up, not executed.",
			over: everywhere,
			run: func(c *cell) error {
				var cl *rpc.Client
				if c.tr == overLab { // connected to a server name that never comes
					cl = newClient(c.T, overLab, c.kind, "", c.lab, nil)
				} else {
					cl = newClient(c.T, c.tr, c.kind, freeAddr(c), nil, nil)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
				defer cancel()
				start := time.Now()
				err := cl.Call(ctx, "Tally.Incr", TallyArgs{ID: 1}, &TallyReply{})
				elapsed := time.Since(start)
				if c.kind == semantics.KindNoRetry {
					if elapsed > 250*time.Millisecond {
						c.Errorf("NoRetry took %v to fail; it must fail at once", elapsed)
					}
				} else {
					if elapsed < 350*time.Millisecond {
						c.Errorf("gave up after %v, before its context ended: %v", elapsed, err)
					}
					if !errors.Is(err, context.DeadlineExceeded) {
						c.Errorf("error does not say the context ended: %v", err)
					}
				}
				return err
			},
			want: same(want{v: vNotExecuted}),
		},
		{
			name: "ServerNotUpYet",
			rule: "Not-sent attempts are free: a retrying policy waits for a server that is not up yet, and the call runs once when it comes up; " +
				"NoRetry fails at once, not executed, and never runs.",
			over: everywhere,
			run: func(c *cell) error {
				n := c.newNode(0)
				cl := c.client()
				up := n.startAfter(300 * time.Millisecond)
				start := time.Now()
				_, err := c.incr(cl, 1)
				if elapsed := time.Since(start); c.kind == semantics.KindNoRetry && elapsed > 250*time.Millisecond {
					c.Errorf("NoRetry took %v to fail; it must fail at once", elapsed)
				}
				<-up
				return err
			},
			want: byKind(want{v: vNotExecuted}, want{runs: 1}, want{runs: 1}, want{runs: 1}),
		},
		{
			name: "RestartWithoutStore",
			rule: "A server restarted without its table (a new epoch) never runs a call of the old epoch: an at-most-once call that may have run " +
				"fails may-have-executed (ErrEpochMismatch) and later calls run once in a new session; at-least-once runs the call again; " +
				"NoRetry fails may-have-executed; exactly-once is refused by a server without a durable store (ErrNotDurable), not executed.",
			over:    everywhere,
			durable: never,
			run:     restartRun,
			want: byKind(want{v: vMaybeExecuted, runs: 1}, want{runs: 2},
				want{v: vMaybeExecuted, runs: 1, is: []error{semantics.ErrEpochMismatch}},
				want{v: vNotExecuted, is: []error{semantics.ErrNotDurable}}),
		},
		{
			name: "RestartWithStore",
			rule: "With a durable store, a call whose reply was lost in a crash and that is retried after the restart runs once and gets its original reply " +
				"(exactly-once, and at-most-once against the same server); at-least-once runs it again; NoRetry fails may-have-executed.",
			over:    everywhere,
			durable: always,
			run:     restartRun,
			want:    byKind(want{v: vMaybeExecuted, runs: 1}, want{runs: 2}, want{runs: 1}, want{runs: 1}),
		},
		{
			name: "ConnKilledBeforeRequestRead",
			rule: "A connection lost before the server read the request leaves the client unable to know: the attempt may have executed; " +
				"NoRetry fails may-have-executed (the method never ran); retrying policies send the call again and it runs once.",
			over: everywhere,
			run: func(c *cell) error {
				return cutRun(c, false)
			},
			want: byKind(want{v: vMaybeExecuted, runs: 0}, want{runs: 1}, want{runs: 1}, want{runs: 1}),
		},
		{
			name: "ConnKilledWhileMethodRuns",
			rule: "A method's context ends at the caller's deadline or at server shutdown, never at connection loss: a method whose connection " +
				"is lost while it runs completes; at-most-once and exactly-once retries wait for it and get its reply without running it again; " +
				"at-least-once runs it again; NoRetry fails may-have-executed.",
			over: everywhere,
			run:  killWhileRunning,
			want: byKind(want{v: vMaybeExecuted, runs: 1}, want{runs: 2}, want{runs: 1}, want{runs: 1}),
		},
		{
			name: "ReplyDropped",
			rule: "A reply lost after the method ran: NoRetry fails may-have-executed; at-least-once runs the call again; at-most-once and " +
				"exactly-once answer the retry from the server's table, so the call runs once and returns its first reply.",
			over: everywhere,
			run: func(c *cell) error {
				return cutRun(c, true)
			},
			want: byKind(want{v: vMaybeExecuted, runs: 1}, want{runs: 2}, want{runs: 1}, want{runs: 1}),
		},
		{
			name: "DuplicateDelivery",
			rule: "A request delivered twice (labrpc Duplicate) runs twice under NoRetry and at-least-once, as documented, " +
				"and once under at-most-once and exactly-once; the call succeeds.",
			over: []transport{overLab},
			run:  duplicateRun,
			want: byKind(want{runs: 2}, want{runs: 2}, want{runs: 1}, want{runs: 1}),
		},
		{
			name: "LateDuplicateAfterAck",
			rule: "A late duplicate of an at-most-once call that arrives after the client acknowledged the call is refused as stale " +
				"(ErrStale, rejected) and never runs.",
			over:  everywhere,
			kinds: onceKinds,
			run:   staleRun,
			want:  same(want{class: semantics.ClassRejected, is: []error{semantics.ErrStale}}),
		},
		{
			name: "LeaseExpiry",
			rule: "Once a session's lease may have expired, the client stops resending a call that may have run and gives up may-have-executed " +
				"(ErrSessionExpired), and a server that forgot the session refuses it: no path runs an at-most-once call twice. " +
				"At-least-once runs it again once the link is back; NoRetry fails may-have-executed.",
			over: everywhere,
			run:  leaseRun,
			want: byKind(want{v: vMaybeExecuted, runs: 1}, want{runs: 2},
				want{v: vMaybeExecuted, runs: 1, is: []error{semantics.ErrSessionExpired}},
				want{v: vMaybeExecuted, runs: 1, is: []error{semantics.ErrSessionExpired}}),
		},
		{
			name: "OversizedArgs",
			rule: "Arguments over the maximum message size (4 MiB) are refused before the method runs: not executed (ErrMessageTooLarge), " +
				"never retried, and later calls go through.",
			over: wire,
			run: func(c *cell) error {
				c.newNode(0).mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				c.mark()
				err := cl.Call(c.ctx, "Tally.Incr", TallyArgs{ID: 1, Pad: make([]byte, rpc.DefaultMaxMessageSize+1)}, &TallyReply{})
				if n := tried(err); n != 1 {
					c.Errorf("%d attempts, want 1 (never retried): %v", n, err)
				}
				c.freeze()
				c.followUp(cl, "after oversized args")
				return err
			},
			want: same(want{v: vNotExecuted, is: []error{rpc.ErrMessageTooLarge}}),
		},
		{
			name: "OversizedReply",
			rule: "A reply over the maximum message size (4 MiB) is never sent: the method ran once, the call fails ErrReplyUnusable and " +
				"ErrMessageTooLarge, no policy retries it, and later calls go through.",
			over: wire,
			run: func(c *cell) error {
				c.newNode(0).mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				c.mark()
				retries := cl.Stats().Run.Retries
				err := cl.Call(c.ctx, "Tally.Big", BigArgs{N: rpc.DefaultMaxMessageSize + 1}, &TallyReply{})
				if n := cl.Stats().Run.Retries - retries; n != 0 {
					c.Errorf("retried %d times", n)
				}
				c.freeze()
				c.followUp(cl, "after an oversized reply")
				return err
			},
			want: same(want{v: vUnusable, runs: 1, is: []error{rpc.ErrMessageTooLarge}}),
		},
		{
			name: "UnencodableArgs",
			rule: "Arguments that cannot be encoded (nil, an unregistered type in an interface) fail that call alone, not executed: " +
				"a call pending on the same client and later calls are untouched.",
			over: everywhere,
			run:  unencodableRun,
			want: same(want{v: vNotExecuted}),
		},
		{
			name: "Shutdown",
			rule: "After a server's Shutdown the next call is not executed: NoRetry fails; retrying policies redial and wait, " +
				"and the call runs once on the server that comes up.",
			over: everywhere,
			run:  shutdownRun,
			want: func(tr transport, k semantics.Kind) want {
				if k != semantics.KindNoRetry {
					return want{runs: 1}
				}
				if tr == overLab { // the core itself answers while it shuts down
					return want{v: vNotExecuted, is: []error{rpc.ErrShuttingDown}}
				}
				return want{v: vNotExecuted}
			},
		},
		{
			name: "TLSVerificationFailure",
			rule: "A TLS certificate that fails verification is a permanent error: the call fails at once under every policy, not executed.",
			over: []transport{overStream},
			run:  tlsRun,
			want: same(want{v: vNotExecuted}),
		},
		{
			name: "UnknownMethod",
			rule: "A call of an unknown service or method is refused: *rpc.RejectedError with CodeUnknownMethod, errors.Is ErrUnknownMethod, " +
				"not executed, never retried; a stock net/rpc server's refusal reads the same.",
			over: []transport{overTCP, overStream, overLab, overStock},
			run:  unknownMethodRun,
			want: same(want{v: vNotExecuted, is: []error{rpc.ErrUnknownMethod}}),
		},
		{
			name: "NotDurable",
			rule: "An exactly-once call to a server without a durable store fails ErrNotDurable, not executed, labelled exactly-once; " +
				"the other policies are served.",
			over:    everywhere,
			durable: never,
			run: func(c *cell) error {
				c.newNode(0).mustStart()
				c.mark()
				_, err := c.incr(c.client(), 1)
				return err
			},
			want: byKind(want{runs: 1}, want{runs: 1}, want{runs: 1}, want{v: vNotExecuted, is: []error{semantics.ErrNotDurable}}),
		},
		{
			name: "BadAddress",
			rule: "An address no dial can reach (malformed, an invalid port) is a permanent error: Dial refuses a malformed one, not executed, " +
				"and a call to an invalid port fails at once under every policy, not executed.",
			over: wire,
			run:  badAddressRun,
			want: same(want{v: vNotExecuted}),
		},
		{
			name: "ApplicationError",
			rule: "An error returned by the method is the call's answer: ErrApplication with the method's text, the method ran once, " +
				"and no policy retries it.",
			over: everywhere,
			run: func(c *cell) error {
				c.newNode(0).mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				c.mark()
				err := cl.Call(c.ctx, "Tally.Fail", TallyArgs{ID: 1}, &TallyReply{})
				if err != nil && err.Error() != "tally: refused" {
					c.Errorf("error text %q, want the method's", err)
				}
				if st := cl.Stats().Run; st.Retries != 0 {
					c.Errorf("retried %d times", st.Retries)
				}
				return err
			},
			// A durable server rolls back everything a method that returned
			// an error wrote (rpc.WithDurableStore): no run of it commits.
			want: byKind(want{v: vApplication, runs: 1}, want{v: vApplication, runs: 1}, want{v: vApplication, runs: 1},
				want{v: vApplication, runs: 0}),
		},
		{
			name: "UndecodableReply",
			rule: "A reply that cannot be decoded into the caller's reply value (passed by value, of the wrong type) fails ErrReplyUnusable: " +
				"the method ran once and no policy retries it.",
			over: everywhere,
			run: func(c *cell) error {
				c.newNode(0).mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				c.mark()
				err := cl.Call(c.ctx, "Tally.Incr", TallyArgs{ID: 1}, TallyReply{}) // by value
				var wrong string
				err2 := cl.Call(c.ctx, "Tally.Incr", TallyArgs{ID: 2}, &wrong)
				if v := verdictOf(c.T, err2); v != vUnusable {
					c.Errorf("reply of the wrong type: verdict %v, want ErrReplyUnusable: %v", v, err2)
				}
				if st := cl.Stats().Run; st.Retries != 0 {
					c.Errorf("retried %d times", st.Retries)
				}
				return err
			},
			want: same(want{v: vUnusable, runs: 2}),
		},
		{
			name: "UnencodableReply",
			rule: "A reply the server cannot encode is never sent: the call fails ErrReplyUnusable, the method ran once, and no policy retries it.",
			over: everywhere,
			run: func(c *cell) error {
				c.newNode(0).mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				c.mark()
				var r BoxArgs
				err := cl.Call(c.ctx, "Tally.BoxReply", TallyArgs{ID: 1}, &r)
				if st := cl.Stats().Run; st.Retries != 0 {
					c.Errorf("retried %d times", st.Retries)
				}
				c.freeze()
				c.followUp(cl, "after an unencodable reply")
				return err
			},
			// A durable server stores the reply with the call's record, in
			// the call's transaction: a reply it cannot encode fails that
			// transaction, so nothing the method did commits and the call
			// is refused, not executed.
			want: byKind(want{v: vUnusable, runs: 1}, want{v: vUnusable, runs: 1}, want{v: vUnusable, runs: 1},
				want{v: vNotExecuted, runs: 0, is: []error{rpc.ErrRejected}}),
		},
		{
			name: "CallerCancels",
			rule: "A call whose caller cancels it after it was sent fails at once, may-have-executed, wrapping context.Canceled; " +
				"the method is not stopped by it and runs once.",
			over: everywhere,
			run: func(c *cell) error {
				n := c.newNode(0)
				n.mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				c.mark()
				n.tally.armed.Store(true)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- cl.Call(ctx, "Tally.Hold", TallyArgs{ID: 1}, &TallyReply{}) }()
				select {
				case <-n.tally.started:
				case <-time.After(5 * time.Second):
					c.Fatal("the method never started")
				}
				cancel()
				var err error
				select {
				case err = <-done:
				case <-time.After(time.Second):
					n.tally.releaseHold()
					c.Fatalf("the call did not return when its caller cancelled it: %v", <-done)
				}
				n.tally.releaseHold()
				return err
			},
			want: same(want{v: vMaybeExecuted, runs: 1, is: []error{context.Canceled}}),
		},
		{
			name: "MethodContextEndsAtCallerDeadline",
			rule: "The caller's deadline travels with the request: the method's context ends at it (context.DeadlineExceeded).",
			over: everywhere,
			run: func(c *cell) error {
				n := c.newNode(0)
				n.mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				c.mark()
				n.tally.armed.Store(true)
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				err := cl.Call(ctx, "Tally.Hold", TallyArgs{ID: 1}, &TallyReply{})
				select {
				case e := <-n.tally.ctxErr:
					if !errors.Is(e, context.DeadlineExceeded) {
						c.Errorf("the method's context ended with %v", e)
					}
				case <-time.After(2 * time.Second):
					c.Error("the method's context did not end at the caller's deadline")
					n.tally.releaseHold()
				}
				return err
			},
			// The caller's verdict at its deadline is pinned by the
			// CallerDeadlineVerdict row. At-least-once may send the call
			// again if the method's answer beats the caller's own timer. A
			// durable server rolls back what a method that failed wrote: no
			// run of it commits.
			want: byKind(want{v: vAny, runs: 1}, want{v: vAny, runs: anyRuns}, want{v: vAny, runs: 1}, want{v: vAny, runs: 0}),
		},
		{
			name: "CallerDeadlineVerdict",
			rule: "A call whose deadline passes before its answer arrives fails may-have-executed wrapping context.DeadlineExceeded, " +
				"also when that deadline ended the method (whose context error is no answer).",
			over: wire,
			run: func(c *cell) error {
				n := c.newNode(0)
				n.mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				// On a loaded machine the deadline can pass before the method
				// starts (it then returns at once, or never receives the
				// request): such a try proves nothing about a method ended by
				// the deadline, so it does not count, and the next try gets a
				// longer deadline.
				var last error
				timeout, started := 20*time.Millisecond, 0
				for try := 0; started < 10 && try < 40; try++ {
					n.tally.armed.Store(true)
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					err := cl.Call(ctx, "Tally.Hold", TallyArgs{ID: int64(try)}, &TallyReply{})
					cancel()
					v := verdictOf(c.T, err)
					select {
					case <-n.tally.started:
					case <-time.After(time.Second):
						// Never ran to its hold: the verdict is still the
						// caller's at its deadline, or not executed if the
						// request never left.
						if v != vNotExecuted && (v != vMaybeExecuted || !errors.Is(err, context.DeadlineExceeded)) {
							c.Errorf("try %d (method did not start): verdict %v: %v", try, v, err)
						}
						timeout = min(2*timeout, time.Second)
						continue
					}
					started++
					select {
					case <-n.tally.returned:
					case <-time.After(2 * time.Second):
						c.Fatal("the method did not return at the caller's deadline")
					}
					<-n.tally.ctxErr
					if v != vMaybeExecuted || !errors.Is(err, context.DeadlineExceeded) {
						c.Errorf("try %d: verdict %v, want ErrMaybeExecuted wrapping context.DeadlineExceeded: %v", try, v, err)
					}
					last = err
				}
				if started == 0 {
					c.Fatal("no try reached the method before its deadline")
				}
				return last
			},
			want: same(want{v: vMaybeExecuted, runs: anyRuns, is: []error{context.DeadlineExceeded}}),
		},
		{
			name: "MethodContextEndsAtServerClose",
			rule: "A server's Close ends the context of the methods still running; the caller gets may-have-executed.",
			over: everywhere,
			run: func(c *cell) error {
				n := c.newNode(0)
				n.mustStart()
				cl := c.client()
				c.warmUp(cl, 1)
				c.mark()
				n.tally.armed.Store(true)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- cl.Call(ctx, "Tally.Hold", TallyArgs{ID: 1}, &TallyReply{}) }()
				select {
				case <-n.tally.started:
				case <-time.After(5 * time.Second):
					c.Fatal("the method never started")
				}
				closed := make(chan struct{})
				go func() {
					defer close(closed)
					n.stop()
				}()
				select {
				case <-n.tally.ctxErr:
				case <-time.After(2 * time.Second):
					c.Error("the method's context did not end when the server closed")
					n.tally.releaseHold()
				}
				<-closed
				return <-done
			},
			// A durable server commits nothing of a method its Close
			// interrupted.
			want: byKind(want{v: vMaybeExecuted, runs: 1}, want{v: vMaybeExecuted, runs: 1}, want{v: vMaybeExecuted, runs: 1},
				want{v: vMaybeExecuted, runs: 0}),
		},
	}
}

// restartRun: a call runs (and, on a durable server, commits), the server
// crashes before its reply leaves, and comes back 1 s later on the same
// address with the same store, if any.
func restartRun(c *cell) error {
	n := c.newNode(0)
	n.mustStart()
	cl := c.client()
	if c.kind == semantics.KindExactlyOnce && !c.durable {
		c.mark()
		_, err := c.incr(cl, 1)
		return err
	}
	c.warmUp(cl, 1)
	c.mark()
	n.loseReply.Store(true)
	type result struct {
		r   TallyReply
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := c.incr(cl, 1)
		done <- result{r, err}
	}()
	select {
	case <-n.ran:
	case <-time.After(5 * time.Second):
		c.Fatal("the call never ran")
	}
	n.stop()
	up := n.startAfter(time.Second)
	res := <-done
	checkFirstReply(c, res.r, res.err)
	c.freeze()
	<-up
	c.followUp(cl, "after the restart")
	return res.err
}

// cutRun loses the next request before the server reads it (reply false)
// or the next reply after the method ran (reply true), once: the faultproxy
// cuts the connection at the exact byte (TCP, TLS), labrpc's link drops it
// (lab).
func cutRun(c *cell, reply bool) error {
	n := c.newNode(0)
	n.mustStart()
	if c.tr == overLab {
		h := &healAfterFirst{method: "Tally.Incr", heal: func() { c.lab.ClearLink("client") }}
		cl := c.clientVia("", func(t rpc.Transport) rpc.Transport { h.Transport = t; return h })
		c.warmUp(cl, 2)
		link := labrpc.LinkConfig{DropRequest: 1}
		if reply {
			link = labrpc.LinkConfig{DropReply: 1}
		}
		if err := c.lab.SetLink("client", link); err != nil {
			c.Fatal(err)
		}
		h.armed.Store(true)
		c.mark()
		r, err := c.incr(cl, 1)
		checkFirstReply(c, r, err)
		return err
	}
	p := newProxy(c.T, n.addr)
	cl := c.clientVia(p.Addr(), nil)
	// Two calls on one connection: a fresh connection carrying one retry
	// stays below the byte count where the cut is set.
	c.warmUp(cl, 2)
	st := p.Stats()
	if st.Accepted != 1 {
		c.Fatalf("warm-up used %d connections, want 1", st.Accepted)
	}
	var err error
	if reply {
		err = p.SetDownstream(faultproxy.Faults{DropAfterBytes: st.Downstream.Bytes})
	} else {
		err = p.SetUpstream(faultproxy.Faults{DropAfterBytes: st.Upstream.Bytes})
	}
	if err != nil {
		c.Fatal(err)
	}
	c.mark()
	r, err := c.incr(cl, 1)
	if p.Stats().Killed == 0 {
		c.Error("the proxy cut no connection: the cell tested nothing")
	}
	checkFirstReply(c, r, err)
	return err
}

// checkFirstReply checks that an at-most-once call answered after a retry
// got the reply of its one run.
func checkFirstReply(c *cell, r TallyReply, err error) {
	c.Helper()
	if err == nil && c.kind >= semantics.KindAtMostOnce && c.runs() == 1 && r.Runs != c.base+1 {
		c.Errorf("reply says run %d, want the first run's reply (%d)", r.Runs, c.base+1)
	}
}

// killWhileRunning cuts the client's link while the method runs, then lets
// the method finish.
func killWhileRunning(c *cell) error {
	n := c.newNode(0)
	n.mustStart()
	var cut, heal func()
	var cl *rpc.Client
	if c.tr == overLab {
		cl = c.client()
		cut = func() { c.lab.Enable("client", false) }
		heal = func() { c.lab.Enable("client", true) }
	} else {
		p := newProxy(c.T, n.addr)
		cl = c.clientVia(p.Addr(), nil)
		cut, heal = p.KillAll, func() {}
	}
	c.warmUp(cl, 1)
	c.mark()
	n.tally.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- cl.Call(c.ctx, "Tally.Hold", TallyArgs{ID: 1}, &TallyReply{}) }()
	select {
	case <-n.tally.started:
	case <-time.After(5 * time.Second):
		c.Fatal("the method never started")
	}
	cut()
	time.Sleep(20 * time.Millisecond) // retries meet the cut link, or wait for the original
	heal()
	time.Sleep(20 * time.Millisecond)
	n.tally.releaseHold()
	err := <-done
	select {
	case <-n.tally.returned:
	case <-time.After(5 * time.Second):
		c.Fatal("the method never returned")
	}
	if e := n.tally.ctxEnded.Load(); e != 0 {
		c.Error("the method's context ended when its connection was lost")
	}
	return err
}

// duplicateRun makes one call on a network that delivers every request
// twice, and waits for the second delivery to be handled.
func duplicateRun(c *cell) error {
	n := c.newNode(0)
	n.mustStart()
	cl := c.client()
	c.warmUp(cl, 1)
	c.lab.Duplicate(1)
	c.mark()
	_, err := c.incr(cl, 1)
	if c.kind <= semantics.KindAtLeastOnce {
		if !testwait.Until(5*time.Second, func() bool { return c.runs() >= 2 }) {
			c.Errorf("the duplicate never ran: %d runs", c.runs())
		}
		return err
	}
	srv := n.server()
	answered := func() bool {
		st := srv.Stats().Table
		return st.Duplicates+st.InFlightWaits+st.Stale > 0
	}
	if !testwait.Until(5*time.Second, answered) {
		c.Error("the duplicate never reached the table")
	}
	return err
}

// staleRun replays the header of an acknowledged call.
func staleRun(c *cell) error {
	n := c.newNode(0)
	n.mustStart()
	cl := c.client()
	for id := int64(1); id <= 2; id++ { // the second call acknowledges the first
		if _, err := c.incr(cl, id); err != nil {
			c.Fatalf("call %d: %v", id, err)
		}
	}
	h, found := n.header(1)
	if !found {
		c.Fatal("no header recorded for call 1")
	}
	c.mark()
	raw := rawTransport(c.T, n)
	return raw.RoundTrip(c.ctx, &rpc.Request{ServiceMethod: "Tally.Incr", Header: &h, Args: TallyArgs{ID: 1}}, &TallyReply{})
}

// leaseRun: the link is cut while the method runs and stays down for twice
// the session's lease.
func leaseRun(c *cell) error {
	n := c.newNode(shortLease)
	n.mustStart()
	var cut, heal func()
	var cl *rpc.Client
	if c.tr == overLab {
		cl = c.client()
		cut = func() { c.lab.Enable("client", false) }
		heal = func() { c.lab.Enable("client", true) }
	} else {
		// The link is cut by killing the proxy's connections and refusing
		// the client's redials at its dialer (not sent, as when nothing
		// listens): reopening the proxy's port later could find it taken
		// by a test running in parallel.
		p := newProxy(c.T, n.addr)
		var down atomic.Bool
		dial := func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", p.Addr())
		}
		if c.tr == overStream {
			_, cfg, _ := tlsConfigs(c.T)
			dial = tlsDial(cfg, p.Addr())
		}
		gated := func(ctx context.Context) (net.Conn, error) {
			if down.Load() {
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
			}
			return dial(ctx)
		}
		cl = rpc.NewClient(rpc.NewStreamTransport(gated, rpc.WithRedialBackoff(time.Millisecond, 20*time.Millisecond)), clientOpts(c.kind)...)
		c.Cleanup(func() { cl.Close() })
		cut = func() {
			down.Store(true)
			p.KillAll()
		}
		heal = func() { down.Store(false) }
	}
	c.warmUp(cl, 1)
	c.mark()
	n.tally.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- cl.Call(c.ctx, "Tally.Hold", TallyArgs{ID: 1}, &TallyReply{}) }()
	select {
	case <-n.tally.started:
	case <-time.After(5 * time.Second):
		c.Fatal("the method never started")
	}
	cut()
	n.tally.releaseHold()
	time.Sleep(linkDown)
	heal()
	return <-done
}

// unencodableRun sends arguments that cannot be encoded while another call
// is pending on the same client.
func unencodableRun(c *cell) error {
	n := c.newNode(0)
	n.mustStart()
	cl := c.client()
	c.warmUp(cl, 1)
	n.tally.armed.Store(true)
	held := make(chan error, 1)
	go func() { held <- cl.Call(c.ctx, "Tally.Hold", TallyArgs{ID: 1}, &TallyReply{}) }()
	select {
	case <-n.tally.started:
	case <-time.After(5 * time.Second):
		c.Fatal("the pending call never started")
	}
	c.mark()
	var last error
	for _, args := range []any{nil, BoxArgs{V: notRegistered{1}}} {
		err := cl.Call(c.ctx, "Tally.Box", args, &TallyReply{})
		v := verdictOf(c.T, err)
		if v != vNotExecuted {
			c.Errorf("args %#v: verdict %v, want not executed: %v", args, v, err)
		}
		checkGiveUp(c.T, err, v, c.kind)
		last = err
	}
	c.freeze()
	n.tally.releaseHold()
	if err := <-held; err != nil {
		c.Errorf("the pending call failed: %v", err)
	}
	c.followUp(cl, "after unencodable args")
	return last
}

// shutdownRun shuts the server down gracefully after a first call; a
// retrying call waits for the server that comes up 300 ms later.
func shutdownRun(c *cell) error {
	n := c.newNode(0)
	n.mustStart()
	cl := c.client()
	c.warmUp(cl, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.shutdown(ctx); err != nil {
		c.Fatalf("Shutdown: %v", err)
	}
	// labrpc: the shut-down core stays in the network and answers
	// ErrShuttingDown (the NoRetry cell). A retrying cell takes it out
	// first: labrpc reports a request that was at a server when it was
	// replaced as may-have-executed, truthfully, and the cell would depend
	// on that race.
	c.mark()
	var up <-chan struct{}
	if c.kind != semantics.KindNoRetry {
		if c.tr == overLab {
			c.lab.DeleteServer(labServer)
		}
		up = n.startAfter(300 * time.Millisecond)
	}
	_, err := c.incr(cl, 1)
	if up != nil {
		<-up
	}
	return err
}

// tlsRun calls a TLS server whose certificate the client cannot verify,
// with a context that never ends.
func tlsRun(c *cell) error {
	n := c.newNode(0)
	n.mustStart()
	_, _, wrong := tlsConfigs(c.T)
	cl := rpc.NewClient(rpc.NewStreamTransport(tlsDial(wrong, n.addr), rpc.WithRedialBackoff(time.Millisecond, 20*time.Millisecond)),
		clientOpts(c.kind)...)
	defer cl.Close()
	c.mark()
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		err = cl.Call(context.Background(), "Tally.Incr", TallyArgs{ID: 1}, &TallyReply{})
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		cl.Close()
		<-done
		c.Fatalf("the call did not fail within 3 s: %v", err)
	}
	return err
}

// unknownMethodRun calls methods the server does not have.
func unknownMethodRun(c *cell) error {
	var cl *rpc.Client
	if c.tr == overStock {
		cl = newClient(c.T, overTCP, c.kind, startStock(c.T), nil, nil)
	} else {
		c.newNode(0).mustStart()
		cl = c.client()
		c.mark()
	}
	var last error
	for _, m := range []string{"Tally.Nope", "Nope.Incr"} {
		err := cl.Call(c.ctx, m, TallyArgs{ID: 1}, &TallyReply{})
		var re *rpc.RejectedError
		if !errors.As(err, &re) || re.Code != rpc.CodeUnknownMethod {
			c.Errorf("%s: not a *rpc.RejectedError with CodeUnknownMethod: %v", m, err)
		}
		if m != "Nope.Incr" {
			last = err
		} else if v := verdictOf(c.T, err); v != vNotExecuted {
			c.Errorf("%s: verdict %v: %v", m, v, err)
		}
	}
	if st := cl.Stats().Run; st.Retries != 0 {
		c.Errorf("retried %d times", st.Retries)
	}
	return last
}

// badAddressRun dials a malformed address, then calls an invalid port with
// a context that never ends.
func badAddressRun(c *cell) error {
	if c.tr == overTCP {
		if _, err := rpc.Dial(c.ctx, "tcp", "no-port-here", clientOpts(c.kind)...); !errors.Is(err, rpc.ErrNotExecuted) {
			c.Errorf("Dial of a malformed address: %v, want not executed", err)
		}
	}
	const invalid = "127.0.0.1:99999"
	var cl *rpc.Client
	if c.tr == overStream {
		_, cfg, _ := tlsConfigs(c.T)
		cl = rpc.NewClient(rpc.NewStreamTransport(tlsDial(cfg, invalid)), clientOpts(c.kind)...)
		c.Cleanup(func() { cl.Close() })
	} else {
		cl = newClient(c.T, overTCP, c.kind, invalid, nil, nil)
	}
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		err = cl.Call(context.Background(), "Tally.Incr", TallyArgs{ID: 1}, &TallyReply{})
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		cl.Close()
		<-done
		c.Fatalf("the call did not fail within 3 s: %v", err)
	}
	return err
}
