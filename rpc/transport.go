package rpc

import (
	"context"
	"time"

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
	// WaitForReady asks the transport, when it cannot reach the server
	// (not connected, the redial backoff running), to wait and try again
	// until ctx ends rather than fail at once. Retrying policies set it;
	// permanent failures (a bad address, TLS verification) still end the
	// attempt at once. Transports that always fail fast may ignore it.
	WaitForReady bool
	// Timeout is how long the caller will still wait for this attempt
	// (from its context's deadline), 0 for no deadline. Transports that
	// can carry it tell the server, whose method context ends then.
	Timeout time.Duration
	// Metadata is sent with the request (the caller's, from
	// AppendToOutgoingContext and interceptors); nil for none. Transports
	// that can carry it hand it to the server, whose methods read it with
	// FromIncomingContext.
	Metadata Metadata
	// ReplyMetadata, when not nil, receives the metadata of the server's
	// answer (header and trailer). Transports that carry no metadata leave
	// it as it is.
	ReplyMetadata *ReplyMetadata
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
