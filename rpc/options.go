package rpc

import (
	"crypto/tls"
	"log"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// An Option configures a client (at Dial or NewClient), a single call, or a
// server (NewServer lists the options it takes, such as WithDurableStore).
// Options that make no sense for a call, such as WithDialTimeout, are
// ignored there.
type Option func(*options)

type options struct {
	policy       semantics.Policy
	interceptors []ClientInterceptor
	maxMsg       int
	dialTimeout  time.Duration
	redialMin    time.Duration
	redialMax    time.Duration
	budget       semantics.RetryBudget
	noBudget     bool
	eagerDial    bool
	balancer     Balancer    // DialCluster only (cluster.go)
	tlsConfig    *tls.Config // WithTLS (tls.go)
	logger       *log.Logger
	callTimeout  time.Duration
	retryTimeout time.Duration // DefaultRetryTimeout; tests shorten it

	attemptInterceptors []AttemptInterceptor
	replyHeader         *Metadata // call-level: WithHeader
	replyTrailer        *Metadata // call-level: WithTrailer

	// server only
	serverInterceptors []Interceptor
	table              *semantics.Table
	durableStore       semantics.Store // given to WithDurableStore, with table its Table
	maxConcurrent      int
	noIntrospection    bool          // WithIntrospection(false): no _semrpc.Health, _semrpc.Methods
	noJSON             bool          // WithJSONCodec(false): Serve speaks gob only
	readTimeout        time.Duration // WithReadTimeout; negative: none
	writeTimeout       time.Duration // WithWriteTimeout; negative: none
	idleTimeout        time.Duration // WithIdleTimeout; negative: none
	handshakeTimeout   time.Duration // WithHandshakeTimeout; negative: none
	maxConns           int           // WithMaxConnections; negative: no cap

	debugAccess debugAccess // WithDebugAccess (debugaccess.go); nil: loopback peers only
}

func defaultOptions() options {
	return options{
		policy:      semantics.NoRetry(),
		maxMsg:      DefaultMaxMessageSize,
		dialTimeout: 5 * time.Second,
		redialMin:   10 * time.Millisecond,
		redialMax:   time.Second,

		retryTimeout: DefaultRetryTimeout,

		maxConcurrent: DefaultMaxConcurrentPerConn,

		readTimeout:      DefaultReadTimeout,
		writeTimeout:     DefaultWriteTimeout,
		idleTimeout:      DefaultIdleTimeout,
		handshakeTimeout: DefaultHandshakeTimeout,
		maxConns:         DefaultMaxConnections,
	}
}

// WithSemantics sets the failure semantics: the client's default at Dial or
// NewClient, or one call's when given to Call.
func WithSemantics(p semantics.Policy) Option {
	return func(o *options) {
		if p != nil {
			o.policy = p
		}
	}
}

// WithClientInterceptor appends an interceptor to the client's chain; the
// first added runs outermost. Client-level only.
func WithClientInterceptor(i ClientInterceptor) Option {
	return func(o *options) { o.interceptors = append(o.interceptors, i) }
}

// WithMaxMessageSize bounds every message the client reads (default
// DefaultMaxMessageSize). Client-level only.
func WithMaxMessageSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxMsg = n
		}
	}
}

// WithDialTimeout bounds each dial of the TCP transport (default 5s).
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.dialTimeout = d
		}
	}
}

// WithRedialBackoff sets the delay range between failed redials of the TCP
// transport (default 10ms growing to 1s). While a redial waits, NoRetry
// calls fail at once as not sent; calls under retrying policies wait for it.
func WithRedialBackoff(min, max time.Duration) Option {
	return func(o *options) {
		if min > 0 && max >= min {
			o.redialMin, o.redialMax = min, max
		}
	}
}

// WithRetryBudget sets the client's retry budget, or shares one among
// clients. By default each client has its own semantics.DefaultBudget()
// (Finagle-style: retries up to 20% of requests over 10 s, plus 10 retries
// a second); semantics.NewTokenBucket gives gRPC's throttling instead. A
// nil budget disables throttling. The default is a trade-off: a lone
// caller above about 200 calls/s on a link that loses 20% of its
// connections exhausts it and some calls fail (doc/semantics.md §3); a
// larger percent (semantics.NewBudget(0.3, 0, 0)) or nil rides that out.
func WithRetryBudget(b semantics.RetryBudget) Option {
	return func(o *options) { o.budget, o.noBudget = b, b == nil }
}

// WithEagerDial makes Dial connect before it returns, and fail (not
// executed) if it cannot. By default Dial does no I/O and the first call
// connects.
func WithEagerDial() Option {
	return func(o *options) { o.eagerDial = true }
}

// WithLogger sets where the client or server logs (default: the standard
// logger).
func WithLogger(l *log.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithTimeout bounds each call whose context has no deadline. At client
// level it is the default for every call. Without it, calls under a
// retrying policy are bounded by DefaultRetryTimeout and NoRetry calls by
// their context only.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.callTimeout = d }
}
