package rpc

import (
	"context"

	"github.com/semrpc/semrpc/semantics"
)

// Request is one attempt of a call as it crosses a Transport.
type Request struct {
	// ServiceMethod is "Service.Method".
	ServiceMethod string
	// Header is the at-most-once header, nil for plain calls.
	Header *semantics.Header
	// Args is the argument value, encoded by the transport.
	Args any
}

// Transport carries requests to one server and brings the replies back. The
// TCP transport behind Dial is one; labrpc's *ClientEnd is another.
//
// RoundTrip sends req once and decodes the reply into reply. Its error must
// carry a failure class (see semantics.ClassOf): wrap transport failures
// with semantics.NotSent or semantics.MaybeExecuted, and turn the server's
// answer back into an error with DecodeError. RoundTrip must return promptly
// when ctx ends (with an error wrapping ctx.Err()), and must never write into
// reply after it has returned. Implementations are safe for concurrent use.
type Transport interface {
	RoundTrip(ctx context.Context, req *Request, reply any) error
	Close() error
}
