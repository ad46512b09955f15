package semantics

import (
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Kind names a failure-semantics policy.
type Kind uint8

// The policies, weakest first.
const (
	// KindNoRetry makes exactly one attempt.
	KindNoRetry Kind = iota
	// KindAtLeastOnce retries failures that are safe or merely uncertain,
	// accepting that the method may run more than once.
	KindAtLeastOnce
	// KindAtMostOnce retries with a fixed header, so the server's dedup
	// table runs the method at most once.
	KindAtMostOnce
	// KindExactlyOnce is at-most-once against a server whose completion
	// records survive crashes.
	KindExactlyOnce
)

var kindNames = [...]string{"no-retry", "at-least-once", "at-most-once", "exactly-once"}

// String returns the policy's name as used in errors and logs, such as
// "at-most-once".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Defaults of the policy options.
const (
	// DefaultAtLeastOnceAttempts bounds the attempts of an at-least-once
	// call that were sent, the first one included (see MaxAttempts). It
	// bounds one call's latency; the retry budget, not this bound, keeps
	// retries from piling load on a failing server. Ten attempts make a call
	// that loses 20% of its attempts fail once in ten million.
	DefaultAtLeastOnceAttempts = 10
	// DefaultWindow is the at-most-once outstanding-call window: above the
	// concurrency of most clients, and equal to the table's default
	// per-session cap (DefaultMaxCalls), which the client's window never
	// exceeds (it is agreed with the server's at the session handshake).
	DefaultWindow = 1024
	// DefaultInitialBackoff is the mean wait before the first retry.
	DefaultInitialBackoff = 10 * time.Millisecond
	// DefaultMaxBackoff caps the mean wait between retries.
	DefaultMaxBackoff = time.Second
	// DefaultBackoffMultiplier grows the mean wait after every retry.
	DefaultBackoffMultiplier = 2.0
	// DefaultBackoffJitter spreads each wait uniformly over ±50% of its mean,
	// so clients that failed together do not retry together.
	DefaultBackoffJitter = 0.5
)

// Policy is a failure-semantics policy: how many times a call may be
// attempted and how the server must treat duplicates. Build one with
// NoRetry, AtLeastOnce, AtMostOnce or ExactlyOnce; a Policy is immutable
// and may be shared by any number of calls. Only this package implements
// Policy.
type Policy interface {
	// Kind reports which policy this is.
	Kind() Kind

	config() *policyConfig
}

// policyConfig holds a policy's settings after its options were applied.
type policyConfig struct {
	kind Kind
	// maxAttempts bounds the attempts that were sent, the first included;
	// 0 means no bound other than the context.
	maxAttempts int
	// initialBackoff and maxBackoff shape the exponential backoff.
	initialBackoff time.Duration
	maxBackoff     time.Duration
	// window is the at-most-once outstanding-call window.
	window int
}

func (c *policyConfig) Kind() Kind            { return c.kind }
func (c *policyConfig) config() *policyConfig { return c }

// String describes the policy and its settings, for logs.
func (c *policyConfig) String() string {
	switch c.kind {
	case KindNoRetry:
		return c.kind.String()
	case KindAtLeastOnce:
		return fmt.Sprintf("%s(attempts=%d backoff=%v..%v)", c.kind, c.maxAttempts, c.initialBackoff, c.maxBackoff)
	}
	return fmt.Sprintf("%s(attempts=%d backoff=%v..%v window=%d)", c.kind, c.maxAttempts, c.initialBackoff, c.maxBackoff, c.window)
}

// Option adjusts a policy built by AtLeastOnce, AtMostOnce or ExactlyOnce.
type Option func(*policyConfig)

// MaxAttempts bounds the attempts of a call that reached, or may have
// reached, the server, the first one included: MaxAttempts(1) retries only
// attempts that were not sent, which are free (they count toward no bound).
// n ≤ 0 removes the bound, leaving the call's context (and, for
// at-least-once, the retry budget) to end it. The default is
// DefaultAtLeastOnceAttempts for at-least-once and no bound for at-most-once
// and exactly-once, whose calls must complete within their deadline.
func MaxAttempts(n int) Option {
	return func(c *policyConfig) {
		if n < 0 {
			n = 0
		}
		c.maxAttempts = n
	}
}

// Backoff sets the mean wait before the first retry (initial) and the cap on
// the mean wait (max). Each wait is drawn uniformly from ±50% of its mean and
// the mean doubles after each retry. initial ≤ 0 keeps the default; max below
// initial is raised to initial.
func Backoff(initial, max time.Duration) Option {
	return func(c *policyConfig) {
		if initial > 0 {
			c.initialBackoff = initial
		}
		c.maxBackoff = max
		if c.maxBackoff < c.initialBackoff {
			c.maxBackoff = c.initialBackoff
		}
	}
}

// Window sets how many at-most-once calls one session may have outstanding
// (see Session); n ≤ 0 keeps DefaultWindow. Other policies ignore it.
func Window(n int) Option {
	return func(c *policyConfig) {
		if n > 0 {
			c.window = n
		}
	}
}

// WindowOf returns the outstanding-call window of an at-most-once or
// exactly-once policy, and 0 for the others (they use no session).
func WindowOf(p Policy) int {
	if p == nil {
		return 0
	}
	c := p.config()
	if c.kind == KindAtMostOnce || c.kind == KindExactlyOnce {
		return c.window
	}
	return 0
}

// MaxAttemptsOf returns the attempt bound of p, 0 meaning none.
func MaxAttemptsOf(p Policy) int {
	if p == nil {
		return 1
	}
	return p.config().maxAttempts
}

var noRetry Policy = &policyConfig{kind: KindNoRetry, maxAttempts: 1}

// NoRetry makes exactly one attempt, even one that was not sent. If it
// fails the caller learns whether the method may have run, and decides.
func NoRetry() Policy { return noRetry }

// AtLeastOnce retries attempts that were not sent or may have executed,
// with exponential backoff and jitter, until one succeeds, the context
// ends, an error is permanent, MaxAttempts attempts were sent (default 5),
// or the Runner's retry budget refuses a retry of an attempt that may have
// executed. Not-sent attempts are retried free, so a call waits for a
// server that is down until its context ends. The method may run more than
// once: use it for idempotent methods.
func AtLeastOnce(opts ...Option) Policy {
	return newPolicy(KindAtLeastOnce, DefaultAtLeastOnceAttempts, opts)
}

// AtMostOnce gives every call a session header (see Session) and retries
// it, with the same header, until it succeeds, the context ends, an error is
// permanent, or MaxAttempts (if set) attempts were sent. The retry budget
// records its attempts but never refuses its retries. The server's dedup
// table runs the method at most once and answers duplicates with the first
// execution's reply.
func AtMostOnce(opts ...Option) Policy {
	return newPolicy(KindAtMostOnce, 0, opts)
}

// ExactlyOnce is AtMostOnce against a server whose completion records are
// durable, so the guarantee survives server crashes; the server refuses it
// with ErrNotDurable otherwise. The client side behaves as AtMostOnce.
func ExactlyOnce(opts ...Option) Policy {
	return newPolicy(KindExactlyOnce, 0, opts)
}

func newPolicy(kind Kind, attempts int, opts []Option) Policy {
	c := &policyConfig{
		kind:           kind,
		maxAttempts:    attempts,
		initialBackoff: DefaultInitialBackoff,
		maxBackoff:     DefaultMaxBackoff,
		window:         DefaultWindow,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(c)
		}
	}
	return c
}

// newBackOff returns a fresh backoff for one call. It is built with the
// constructor (a zero Stop field would make a retry loop spin) and never
// stops on elapsed time: the call's context and MaxAttempts bound it.
func (c *policyConfig) newBackOff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.initialBackoff),
		backoff.WithMaxInterval(c.maxBackoff),
		backoff.WithMultiplier(DefaultBackoffMultiplier),
		backoff.WithRandomizationFactor(DefaultBackoffJitter),
		backoff.WithMaxElapsedTime(0),
	)
}
