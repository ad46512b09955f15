package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Client makes calls through a Transport under a failure-semantics policy.
// It is safe for concurrent use. Unlike net/rpc's, a client survives a lost
// connection: the TCP transport redials on the next call.
type Client struct {
	t       Transport
	opts    options
	runner  semantics.Runner
	call    Handler        // the interceptor chain around c.invoke, or nil
	attempt AttemptHandler // the attempt interceptors around the transport, or nil
	// sessions are the client's at-most-once sessions: one manager for a
	// client of one server; in a cluster client, one per server, in the
	// order of its addresses.
	sessions []*sessionManager

	closed atomic.Bool

	methods sync.Map // "Service.Method" -> *callStats
}

// DefaultRetryTimeout bounds the retries of a call under a retrying policy
// (at-least-once, at-most-once, exactly-once) whose context has no deadline,
// unless WithTimeout gives the call a deadline: no retry starts after it.
// Such a call waits for a server that is down, and nothing may retry
// forever. (An attempt already sent still waits for its reply, as a NoRetry
// call without a deadline does.)
const DefaultRetryTimeout = time.Minute

// closeTimeout bounds the best-effort end of the client's sessions in Close.
const closeTimeout = time.Second

// Dial returns a client for a server speaking net/rpc's gob wire (a semrpc
// server or a stock net/rpc one) at address. Like grpc-go's NewClient, it
// does no I/O by default: the connection is made by the first call, and
// redialled after it is lost, so a client can start before its server.
// Calls under a retrying policy wait for a server that is not up yet (until
// their context ends); NoRetry calls fail at once, not executed.
//
// A malformed address fails Dial at once. WithEagerDial makes Dial connect
// before it returns and fail, not executed, if it cannot.
func Dial(ctx context.Context, network, address string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkAddress(network, address); err != nil {
		return nil, err
	}
	t := newTCPTransport(network, address, &o)
	if o.tlsConfig != nil {
		t = newStreamTransport(address, streamDialer(network, address, &o), &o)
	}
	if o.eagerDial {
		if _, err := t.conn(ctx, false); err != nil {
			t.Close()
			return nil, err
		}
	}
	return newClient(t, o), nil
}

// checkAddress refuses addresses that no dial could reach.
func checkAddress(network, address string) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
		if _, _, err := net.SplitHostPort(address); err != nil {
			return semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: dial %s %q: %w", network, address, err)))
		}
	case "unix", "unixpacket":
	default:
		return semantics.Permanent(semantics.NotSent(fmt.Errorf("rpc: dial: %w", net.UnknownNetworkError(network))))
	}
	return nil
}

// NewClient returns a client that makes its calls through t. Close closes t.
func NewClient(t Transport, opts ...Option) *Client {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return newClient(t, o)
}

func newClient(t Transport, o options) *Client {
	c := &Client{t: t, opts: o}
	if ct, ok := t.(*clusterTransport); ok {
		for i := range ct.members {
			c.sessions = append(c.sessions, &sessionManager{c: c, server: i})
		}
	} else {
		c.sessions = []*sessionManager{{c: c, server: -1}}
	}
	switch {
	case o.budget != nil:
		c.runner.Budget = o.budget
	case !o.noBudget:
		c.runner.Budget = semantics.DefaultBudget()
	}
	if len(o.interceptors) > 0 {
		c.call = chain(o.interceptors, func(ctx context.Context, ci *CallInfo) error {
			return c.invoke(ctx, ci.ServiceMethod, ci.Args, ci.Reply, ci.Policy, ci.replyMD)
		})
	}
	if len(o.attemptInterceptors) > 0 {
		c.attempt = chainAttempts(o.attemptInterceptors, c.sendAttempt)
	}
	return c
}

// Call invokes serviceMethod with args and waits for the reply, under the
// client's policy or the one given here with WithSemantics. When ctx ends
// the call returns at once with an error wrapping ctx's error. A call under
// a retrying policy whose ctx has no deadline is bounded by WithTimeout, or
// else its retries by DefaultRetryTimeout.
//
// A nil error means the call succeeded and reply holds the answer. Other
// errors say what happened to the call (see the package documentation):
// errors.Is(err, ErrApplication) when the method returned an error,
// ErrReplyUnusable when it ran but its reply could not be delivered,
// ErrNotExecuted when the call definitely did not run, ErrMaybeExecuted
// when it may have.
func (c *Client) Call(ctx context.Context, serviceMethod string, args, reply any, opts ...Option) error {
	p := c.opts.policy
	timeout := c.opts.callTimeout
	var rm *ReplyMetadata // where the reply's metadata goes, if asked for
	if len(opts) > 0 {
		o := options{policy: p, callTimeout: timeout}
		for _, opt := range opts {
			opt(&o)
		}
		p, timeout = o.policy, o.callTimeout
		if o.replyHeader != nil || o.replyTrailer != nil {
			rm = new(ReplyMetadata)
			defer func() {
				if o.replyHeader != nil {
					*o.replyHeader = rm.Header
				}
				if o.replyTrailer != nil {
					*o.replyTrailer = rm.Trailer
				}
			}()
		}
	}
	if timeout > 0 {
		if _, has := ctx.Deadline(); !has {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
	}
	start := time.Now()
	var err error
	if c.call != nil {
		err = c.call(ctx, &CallInfo{ServiceMethod: serviceMethod, Policy: p, Args: args, Reply: reply, replyMD: rm})
	} else {
		err = c.invoke(ctx, serviceMethod, args, reply, p, rm)
	}
	c.record(serviceMethod, time.Since(start), err != nil)
	return err
}

// AsyncCall is a call started with Go.
type AsyncCall struct {
	ServiceMethod string
	Args, Reply   any
	Err           error         // set before Done is closed
	Done          chan struct{} // closed when the call completes
}

// Go starts a call and returns at once; the call's Done channel is closed
// when it completes. The call runs until ctx ends or the policy gives up.
func (c *Client) Go(ctx context.Context, serviceMethod string, args, reply any, opts ...Option) *AsyncCall {
	ac := &AsyncCall{ServiceMethod: serviceMethod, Args: args, Reply: reply, Done: make(chan struct{})}
	go func() {
		ac.Err = c.Call(ctx, serviceMethod, args, reply, opts...)
		close(ac.Done)
	}()
	return ac
}

// invoke runs one call under policy p; rm, if not nil, receives its
// reply's metadata.
func (c *Client) invoke(ctx context.Context, serviceMethod string, args, reply any, p semantics.Policy, rm *ReplyMetadata) error {
	if c.closed.Load() {
		return semantics.GiveUp(p.Kind(), errClosed())
	}
	switch p.Kind() {
	case semantics.KindAtMostOnce, semantics.KindExactlyOnce:
		return c.invokeOnce(ctx, serviceMethod, args, reply, p, rm)
	}
	deadline, wait := c.retryBound(ctx, p)
	req := Request{ServiceMethod: serviceMethod, Args: args, WaitForReady: wait, ReplyMetadata: rm}
	var at attempts
	return c.runner.RunUntil(ctx, deadline, p, func(ctx context.Context) error {
		req.Timeout = remaining(ctx, time.Now())
		return c.roundTrip(ctx, &req, reply, p, &at)
	})
}

// retryBound returns the retry deadline of a call under p with ctx, and
// whether its attempts may wait for a server (WaitForReady). A retrying
// call whose context has no deadline gets retryTimeout as its retry
// deadline (no retry starts after it; a context for it would cost every
// call), and its attempts fail fast when not connected, so that the retry
// loop, which the deadline bounds, does the waiting.
func (c *Client) retryBound(ctx context.Context, p semantics.Policy) (time.Time, bool) {
	if p.Kind() == semantics.KindNoRetry {
		return time.Time{}, false
	}
	if _, ok := ctx.Deadline(); ok {
		return time.Time{}, true
	}
	return time.Now().Add(c.opts.retryTimeout), false
}

// invokeOnce runs an at-most-once or exactly-once call: one sequence number
// for all its attempts, in one session. Once an attempt may have run, the
// call is sent again only while the session's lease surely holds: after
// that the server may have forgotten the session, and the call ends as
// may-have-executed. A call that the server refuses because it does not
// know the session, and that never ran, is made again in a new session.
// In a cluster client the balancer first picks the server, and the call
// runs in that server's session; a call not sent because its server left
// the rotation (its handshake or its first attempt refused, not sent)
// tries the next server (see chooseSessions).
func (c *Client) invokeOnce(ctx context.Context, serviceMethod string, args, reply any, p semantics.Policy, rm *ReplyMetadata) error {
	deadline, wait := c.retryBound(ctx, p)
	var (
		at attempts
		sc serverChoice
	)
	for round := 0; ; round++ {
		sm, err := c.chooseSessions(ctx, deadline, p, &sc)
		if err != nil {
			return err
		}
		cs, h, err := sm.begin(ctx, deadline, p)
		if err != nil {
			if sc.leftRotation(sm, err) {
				round-- // the call was not sent: it tries the next server
				continue
			}
			return err
		}
		hdr := h // the first attempt's header is begin's: no lock to take again
		req := Request{ServiceMethod: serviceMethod, Args: args, WaitForReady: wait, Header: &hdr, ReplyMetadata: rm}
		maybe, retry := false, false // an attempt may have run; this is a retry
		err = c.runner.RunUntil(ctx, deadline, p, func(ctx context.Context) error {
			now := time.Now()
			if maybe && cs.mayHaveExpired(now) {
				return semantics.Permanent(semantics.NotSent(fmt.Errorf(
					"rpc: %s not sent again: the server may have forgotten its session (lease %v, last admitted request sent %v ago): %w",
					serviceMethod, cs.lease, now.Sub(time.Unix(0, cs.heard.Load())).Round(time.Millisecond), semantics.ErrSessionExpired)))
			}
			if retry {
				// A fresh header: a transport may still read the last one
				// (labrpc delivers duplicates after the attempt ended).
				rh := cs.Retry(h.Seq)
				req.Header = &rh
			}
			retry = true
			req.Timeout = remaining(ctx, now)
			err := c.roundTrip(ctx, &req, reply, p, &at)
			switch semantics.ClassOf(err) {
			case semantics.ClassNone, semantics.ClassApplication, semantics.ClassUnusable:
				cs.confirm(now)
			case semantics.ClassMaybeExecuted:
				maybe = true
			case semantics.ClassRejected:
				if errors.Is(err, semantics.ErrStale) {
					cs.confirm(now)
				}
			}
			return err
		})
		sm.end(cs, h.Seq)
		if err == nil {
			return nil
		}
		if errors.Is(err, semantics.ErrSessionExpired) || errors.Is(err, semantics.ErrEpochMismatch) {
			sm.drop(cs)
			if sc.leftRotation(sm, err) && ctx.Err() == nil {
				round-- // its server left the rotation before the call was sent
				continue
			}
			if round < 2 && errors.Is(err, semantics.ErrNotExecuted) && ctx.Err() == nil &&
				(deadline.IsZero() || time.Now().Before(deadline)) {
				continue
			}
		}
		return err
	}
}

func (c *Client) record(serviceMethod string, d time.Duration, failed bool) {
	v, ok := c.methods.Load(serviceMethod)
	if !ok {
		v, _ = c.methods.LoadOrStore(serviceMethod, new(callStats))
	}
	v.(*callStats).record(d, failed)
}

// Close closes the client and its transport. It first ends the client's
// at-most-once sessions on the server (best effort, within a second), so
// the server need not keep them for their lease; a session handshake in
// flight is waited for (at most a second too), and the session it opened
// is ended with the others, never used. Calls pending on it fail (as
// may-have-executed if they were sent); later calls fail as not executed.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	closeAll(c.sessions, closeTimeout)
	return c.t.Close()
}

// ClientStats are a client's counters.
type ClientStats struct {
	Methods        map[string]MethodStats // calls as the caller saw them, retries included
	Run            semantics.RunStats     // attempts, retries, budget refusals
	SessionsOpened uint64                 // at-most-once sessions opened
	SessionResets  uint64                 // sessions dropped after expiry or a server restart
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() ClientStats {
	var opened, resets uint64
	for _, sm := range c.sessions {
		o, r := sm.stats()
		opened += o
		resets += r
	}
	st := ClientStats{
		Methods:        make(map[string]MethodStats),
		Run:            c.runner.Stats(),
		SessionsOpened: opened,
		SessionResets:  resets,
	}
	c.methods.Range(func(k, v any) bool {
		st.Methods[k.(string)] = v.(*callStats).snapshot()
		return true
	})
	return st
}
