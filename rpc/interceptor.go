package rpc

import (
	"context"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// CallInfo describes one call to interceptors.
type CallInfo struct {
	// ServiceMethod is "Service.Method".
	ServiceMethod string
	// Header is the at-most-once header: on the server, the request's (nil
	// for plain calls); on the client, unset.
	Header *semantics.Header
	// Policy is the call's failure semantics (client side only).
	Policy semantics.Policy
	// Args and Reply are the call's values. On the server Reply is set by
	// the time next returns.
	Args, Reply any

	replyMD *ReplyMetadata // the call's WithHeader/WithTrailer target, or nil
}

// Handler runs a call.
type Handler func(ctx context.Context, call *CallInfo) error

// Interceptor wraps a call: it may look at the call, change the context,
// and must call next to go on (or return an error instead). On the client
// it wraps the whole call, retries included (AttemptInterceptor sees each
// attempt); on the server each request.
// A server interceptor that refuses a request without calling next should
// return an error wrapping ErrRejected, so that the caller learns the
// method did not run; any other error reaches the caller as a ServerError.
type Interceptor func(ctx context.Context, call *CallInfo, next Handler) error

// ClientInterceptor is an Interceptor installed with WithClientInterceptor.
type ClientInterceptor = Interceptor

// chain composes interceptors around final; the first runs outermost.
func chain(is []Interceptor, final Handler) Handler {
	h := final
	for i := len(is) - 1; i >= 0; i-- {
		ic, next := is[i], h
		h = func(ctx context.Context, call *CallInfo) error { return ic(ctx, call, next) }
	}
	return h
}

// AttemptInfo describes one attempt of a call to attempt interceptors.
type AttemptInfo struct {
	// ServiceMethod is "Service.Method".
	ServiceMethod string
	// Policy is the call's failure semantics.
	Policy semantics.Policy
	// Attempt numbers the call's attempts from 1. Under at-most-once, a
	// call that had to start over in a new session goes on counting.
	Attempt int
	// Backoff is how long the call waited between the end of the previous
	// attempt and the start of this one (its backoff, as it was measured);
	// 0 for the first.
	Backoff time.Duration
	// Request is what the transport is given. Its Metadata is set from the
	// context that reaches the end of the chain, so an interceptor adds
	// metadata with AppendToOutgoingContext.
	Request *Request
	// Reply is the call's reply value; the attempt decodes into it.
	Reply any
}

// AttemptHandler runs one attempt.
type AttemptHandler func(ctx context.Context, a *AttemptInfo) error

// AttemptInterceptor wraps every attempt of every call of a client, under
// any policy: it sees each try, its metadata and its error, whose failure
// class (semantics.ClassOf) tells what became of it. It must call next to
// make the attempt, or return an error that carries a class (see
// Transport): an error without one counts as "may have executed".
// The at-most-once session handshake is not shown to it.
type AttemptInterceptor func(ctx context.Context, a *AttemptInfo, next AttemptHandler) error

// WithAttemptInterceptor appends an interceptor to the client's attempt
// chain; the first added runs outermost. Client-level only.
func WithAttemptInterceptor(i AttemptInterceptor) Option {
	return func(o *options) { o.attemptInterceptors = append(o.attemptInterceptors, i) }
}

// chainAttempts composes attempt interceptors around final.
func chainAttempts(is []AttemptInterceptor, final AttemptHandler) AttemptHandler {
	h := final
	for i := len(is) - 1; i >= 0; i-- {
		ic, next := is[i], h
		h = func(ctx context.Context, a *AttemptInfo) error { return ic(ctx, a, next) }
	}
	return h
}

// attempts counts the attempts of one call for the attempt interceptors.
type attempts struct {
	n       int
	lastEnd time.Time
}

// roundTrip makes one attempt of a call: through the attempt interceptors
// if the client has any, else straight to the transport.
func (c *Client) roundTrip(ctx context.Context, req *Request, reply any, p semantics.Policy, at *attempts) error {
	if c.attempt == nil {
		md, err := outgoingMetadata(ctx, req.ServiceMethod)
		if err != nil {
			return err
		}
		req.Metadata = md
		return c.t.RoundTrip(ctx, req, reply)
	}
	at.n++
	a := &AttemptInfo{ServiceMethod: req.ServiceMethod, Policy: p, Attempt: at.n, Request: req, Reply: reply}
	start := time.Now()
	if !at.lastEnd.IsZero() {
		a.Backoff = start.Sub(at.lastEnd)
	}
	err := c.attempt(ctx, a)
	at.lastEnd = time.Now()
	return err
}

// sendAttempt is the end of the attempt chain: it takes the metadata from
// ctx and gives the request to the transport.
func (c *Client) sendAttempt(ctx context.Context, a *AttemptInfo) error {
	md, err := outgoingMetadata(ctx, a.ServiceMethod)
	if err != nil {
		return err
	}
	a.Request.Metadata = md
	return c.t.RoundTrip(ctx, a.Request, a.Reply)
}
