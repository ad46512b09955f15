package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// Client makes calls through a Transport under a failure-semantics policy.
// It is safe for concurrent use. Unlike net/rpc's, a client survives a lost
// connection: the TCP transport redials on the next call.
type Client struct {
	t      Transport
	opts   options
	runner semantics.Runner
	call   Handler // the interceptor chain around c.invoke, or nil

	opening chan struct{} // a one-slot lock: serialises session handshakes, and can be given up on

	mu      sync.Mutex // protects following
	sess    *semantics.Session
	durable bool // sess's server keeps durable completion records

	closed atomic.Bool

	methods        sync.Map // "Service.Method" -> *callStats
	sessionsOpened atomic.Uint64
	sessionResets  atomic.Uint64
}

// Dial connects to a server speaking net/rpc's gob wire (a semrpc server or
// a stock net/rpc one) and returns a client for it. The connection is made
// before Dial returns; later, lost connections are redialled on demand.
func Dial(ctx context.Context, network, address string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	t := newTCPTransport(network, address, &o)
	if _, err := t.conn(ctx); err != nil {
		t.Close()
		return nil, err
	}
	return newClient(t, o), nil
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
	c := &Client{t: t, opts: o, opening: make(chan struct{}, 1)}
	switch {
	case o.budget != nil:
		c.runner.Budget = o.budget
	case !o.noBudget:
		c.runner.Budget = semantics.NewBudget(10, 0.1)
	}
	if len(o.interceptors) > 0 {
		c.call = chain(o.interceptors, func(ctx context.Context, ci *CallInfo) error {
			return c.invoke(ctx, ci.ServiceMethod, ci.Args, ci.Reply, ci.Policy)
		})
	}
	return c
}

// Call invokes serviceMethod with args and waits for the reply, under the
// client's policy or the one given here with WithSemantics. When ctx ends
// the call returns at once with an error wrapping ctx's error.
//
// A nil error means the call succeeded and reply holds the answer. Other
// errors say what happened to the call (see the package documentation):
// errors.Is(err, ErrApplication) when the method returned an error,
// ErrNotExecuted when the call definitely did not run, ErrMaybeExecuted
// when it may have.
func (c *Client) Call(ctx context.Context, serviceMethod string, args, reply any, opts ...Option) error {
	p := c.opts.policy
	timeout := c.opts.callTimeout
	if len(opts) > 0 {
		o := options{policy: p, callTimeout: timeout}
		for _, opt := range opts {
			opt(&o)
		}
		p, timeout = o.policy, o.callTimeout
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
		err = c.call(ctx, &CallInfo{ServiceMethod: serviceMethod, Policy: p, Args: args, Reply: reply})
	} else {
		err = c.invoke(ctx, serviceMethod, args, reply, p)
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

// invoke runs one call under policy p.
func (c *Client) invoke(ctx context.Context, serviceMethod string, args, reply any, p semantics.Policy) error {
	if c.closed.Load() {
		return c.runner.Run(ctx, semantics.NoRetry(), func(context.Context) error {
			return reject(ErrClientClosed, "%v", ErrClientClosed)
		})
	}
	switch p.Kind() {
	case semantics.KindAtMostOnce, semantics.KindExactlyOnce:
		return c.invokeOnce(ctx, serviceMethod, args, reply, p)
	}
	req := Request{ServiceMethod: serviceMethod, Args: args}
	return c.runner.Run(ctx, p, func(ctx context.Context) error {
		return c.t.RoundTrip(ctx, &req, reply)
	})
}

// invokeOnce runs an at-most-once or exactly-once call: one sequence number
// for all its attempts, in the client's session. A call that the server
// refuses because it lost or expired the session, and that never ran, is
// made again in a new session; one that may have run is reported as such.
func (c *Client) invokeOnce(ctx context.Context, serviceMethod string, args, reply any, p semantics.Policy) error {
	for round := 0; ; round++ {
		sess, err := c.session(ctx, p)
		if err != nil {
			return err
		}
		h, err := sess.Begin(ctx)
		if err != nil {
			return c.runner.Run(ctx, semantics.NoRetry(), func(context.Context) error {
				return semantics.NotSent(fmt.Errorf("rpc: waiting for a window slot: %w", err))
			})
		}
		req := Request{ServiceMethod: serviceMethod, Args: args}
		err = c.runner.Run(ctx, p, func(ctx context.Context) error {
			hdr := sess.Retry(h.Seq)
			req.Header = &hdr
			return c.t.RoundTrip(ctx, &req, reply)
		})
		sess.End(h.Seq)
		if err == nil {
			return nil
		}
		if errors.Is(err, semantics.ErrSessionExpired) || errors.Is(err, semantics.ErrEpochMismatch) {
			c.dropSession(sess)
			if round < 2 && errors.Is(err, semantics.ErrNotExecuted) && ctx.Err() == nil {
				continue
			}
		}
		return err
	}
}

// session returns the client's at-most-once session, opening one with the
// server's handshake if there is none.
func (c *Client) session(ctx context.Context, p semantics.Policy) (*semantics.Session, error) {
	c.mu.Lock()
	s, durable := c.sess, c.durable
	c.mu.Unlock()
	if s != nil {
		return s, c.checkDurable(ctx, p, durable)
	}
	select {
	case c.opening <- struct{}{}:
	case <-ctx.Done():
		// Another call's handshake is in progress; this call was never sent.
		return nil, c.runner.Run(ctx, semantics.NoRetry(), func(ctx context.Context) error {
			return semantics.NotSent(fmt.Errorf("rpc: waiting for the session handshake: %w", ctx.Err()))
		})
	}
	defer func() { <-c.opening }()
	c.mu.Lock()
	s, durable = c.sess, c.durable
	c.mu.Unlock()
	if s != nil {
		return s, c.checkDurable(ctx, p, durable)
	}
	var rep OpenReply
	req := Request{ServiceMethod: openMethod, Args: &OpenArgs{Version: 1}}
	err := c.runner.Run(ctx, p, func(ctx context.Context) error {
		err := c.t.RoundTrip(ctx, &req, &rep)
		if errors.Is(err, semantics.ErrApplication) {
			// A server without the handshake (a stock net/rpc server, say).
			return reject(nil, "rpc: server does not support at-most-once calls: %v", err)
		}
		return err
	})
	if err != nil && !errors.Is(err, semantics.ErrNotExecuted) {
		// The handshake may have reached the server, but the caller's call
		// was never sent: its verdict is "not executed". The handshake's
		// attempts stay in the message; the context's error stays
		// matchable.
		hs := err
		return nil, c.runner.Run(ctx, semantics.NoRetry(), func(ctx context.Context) error {
			if cerr := ctx.Err(); cerr != nil {
				return semantics.NotSent(fmt.Errorf("rpc: opening an at-most-once session: %v: %w", hs, cerr))
			}
			return semantics.NotSent(fmt.Errorf("rpc: opening an at-most-once session: %v", hs))
		})
	}
	if err != nil {
		return nil, err
	}
	if err := c.checkDurable(ctx, p, rep.Durable); err != nil {
		return nil, err
	}
	s = semantics.NewSession(rep.Epoch, semantics.WindowOf(p))
	c.mu.Lock()
	c.sess, c.durable = s, rep.Durable
	c.mu.Unlock()
	c.sessionsOpened.Add(1)
	return s, nil
}

// checkDurable refuses an exactly-once call to a server without durable
// completion records, whoever opened the session.
func (c *Client) checkDurable(ctx context.Context, p semantics.Policy, durable bool) error {
	if p.Kind() != semantics.KindExactlyOnce || durable {
		return nil
	}
	return c.runner.Run(ctx, semantics.NoRetry(), func(context.Context) error {
		return fmt.Errorf("rpc: exactly-once call refused: %w", semantics.ErrNotDurable)
	})
}

// dropSession forgets s so that the next call opens a new session.
func (c *Client) dropSession(s *semantics.Session) {
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
		c.sessionResets.Add(1)
	}
	c.mu.Unlock()
}

func (c *Client) record(serviceMethod string, d time.Duration, failed bool) {
	v, ok := c.methods.Load(serviceMethod)
	if !ok {
		v, _ = c.methods.LoadOrStore(serviceMethod, new(callStats))
	}
	v.(*callStats).record(d, failed)
}

// Close closes the client and its transport. Calls pending on it fail (as
// may-have-executed if they were sent); later calls fail as not executed.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
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
	st := ClientStats{
		Methods:        make(map[string]MethodStats),
		Run:            c.runner.Stats(),
		SessionsOpened: c.sessionsOpened.Load(),
		SessionResets:  c.sessionResets.Load(),
	}
	c.methods.Range(func(k, v any) bool {
		st.Methods[k.(string)] = v.(*callStats).snapshot()
		return true
	})
	return st
}
