package rpc

import (
	"errors"

	"github.com/semrpc/semrpc/semantics"
)

// The TCP wire is net/rpc's gob protocol: on each connection one gob stream
// per direction, each call a header value followed by a body value. Our
// headers are net/rpc's with extra fields; gob ignores fields the receiver
// does not have, so a stock net/rpc peer reads ours and we read theirs.

// wireRequest is net/rpc's Request plus the semantics header.
type wireRequest struct {
	ServiceMethod string
	Seq           uint64
	Sem           *semantics.Header // nil for plain calls and from stock clients
}

// wireResponse is net/rpc's Response plus a code that says what kind of
// error Error holds.
type wireResponse struct {
	ServiceMethod string
	Seq           uint64
	Error         string
	Code          uint8 // codeNone when Error is empty or an application error
}

// emptyBody is sent as the body of an error response, as net/rpc does.
type emptyBody struct{}

// Response codes. A stock net/rpc client sees only Error.
const (
	codeNone uint8 = iota
	codeRejected
	codeStale
	codeExpired
	codeEpoch
	codeBadHeader
	codeNotDurable
	codeShuttingDown
	codeTooLarge
	codeMaybeExecuted // the server cannot tell whether the method's effects persisted
)

// openMethod is the reserved method that opens an at-most-once session: it
// returns the server's epoch and whether its table is durable.
const openMethod = "_semrpc.Open"

// OpenArgs are the arguments of the session handshake.
type OpenArgs struct {
	Version int
}

// OpenReply is the server's answer to the session handshake.
type OpenReply struct {
	Epoch   uint64
	Durable bool
}

// EncodeError turns an error returned by the server core into the code and
// text a transport sends back. Custom transports use it with DecodeError.
func EncodeError(err error) (code uint8, msg string) {
	if err == nil {
		return codeNone, ""
	}
	msg = err.Error()
	if msg == "" {
		msg = "rpc: error with empty text"
	}
	switch {
	case errors.Is(err, semantics.ErrApplication):
		return codeNone, msg
	case errors.Is(err, semantics.ErrMaybeExecuted):
		return codeMaybeExecuted, msg
	case errors.Is(err, semantics.ErrStale):
		return codeStale, msg
	case errors.Is(err, semantics.ErrSessionExpired):
		return codeExpired, msg
	case errors.Is(err, semantics.ErrEpochMismatch):
		return codeEpoch, msg
	case errors.Is(err, semantics.ErrBadHeader):
		return codeBadHeader, msg
	case errors.Is(err, semantics.ErrNotDurable):
		return codeNotDurable, msg
	case errors.Is(err, ErrShuttingDown):
		return codeShuttingDown, msg
	case errors.Is(err, ErrMessageTooLarge):
		return codeTooLarge, msg
	case errors.Is(err, semantics.ErrRejected):
		return codeRejected, msg
	}
	return codeNone, msg
}

// DecodeError is the inverse of EncodeError: it rebuilds an error whose
// class and sentinel survive the trip.
func DecodeError(code uint8, msg string) error {
	if code == codeNone && msg == "" {
		return nil
	}
	var kind error
	switch code {
	case codeNone:
		return ServerError(msg)
	case codeMaybeExecuted:
		return semantics.MaybeExecuted(errors.New(msg))
	case codeStale:
		kind = semantics.ErrStale
	case codeExpired:
		kind = semantics.ErrSessionExpired
	case codeEpoch:
		kind = semantics.ErrEpochMismatch
	case codeBadHeader:
		kind = semantics.ErrBadHeader
	case codeNotDurable:
		kind = semantics.ErrNotDurable
	case codeShuttingDown:
		kind = ErrShuttingDown
	case codeTooLarge:
		kind = ErrMessageTooLarge
	case codeRejected:
	default:
		// A code this side does not know (a newer or damaged peer): the
		// only safe reading is that the method may have run.
		return semantics.MaybeExecuted(errors.New(msg))
	}
	return &rejection{msg: msg, kind: kind}
}
