package rpc

import (
	"context"

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
}

// Handler runs a call.
type Handler func(ctx context.Context, call *CallInfo) error

// Interceptor wraps a call: it may look at the call, change the context,
// and must call next to go on (or return an error instead). On the client
// it wraps the whole call, retries included; on the server each request.
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
