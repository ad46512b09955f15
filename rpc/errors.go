package rpc

import (
	"errors"
	"fmt"

	"github.com/semrpc/semrpc/semantics"
)

// The failure classes and verdicts, re-exported from package semantics so
// that callers of this package need only one import. They are the same
// values: errors.Is works with either name.
var (
	ErrNotSent       = semantics.ErrNotSent
	ErrMaybeExecuted = semantics.ErrMaybeExecuted
	ErrApplication   = semantics.ErrApplication
	ErrReplyUnusable = semantics.ErrReplyUnusable
	ErrNotExecuted   = semantics.ErrNotExecuted
	ErrRejected      = semantics.ErrRejected
)

var (
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("rpc: server closed")

	// ErrClientClosed is returned by calls made on, or pending in, a closed client.
	ErrClientClosed = errors.New("rpc: client closed")

	// ErrMessageTooLarge is reported when a message exceeds the maximum
	// message size (DefaultMaxMessageSize unless configured). For a
	// request it comes with ErrRejected (not run); for a reply with
	// ErrReplyUnusable (the method ran).
	ErrMessageTooLarge = errors.New("rpc: message too large")

	// ErrConnLost is wrapped by the errors of calls pending on a connection
	// that broke.
	ErrConnLost = errors.New("rpc: connection lost")

	// ErrShuttingDown is the server's answer to requests that arrive while
	// it shuts down; the method did not run, and retrying policies send the
	// call again once a server is up.
	ErrShuttingDown = errors.New("rpc: server shutting down")

	// ErrUnknownMethod is the refusal of a request for a service or method
	// the server does not have (from a semrpc or a stock net/rpc server).
	// The method did not run; no policy retries it.
	ErrUnknownMethod = errors.New("rpc: unknown service or method")

	// ErrBadArguments is the refusal of a request whose arguments do not
	// decode into the method's argument type (for CallJSON, also a JSON
	// field the type does not have). The method did not run; no policy
	// retries it.
	ErrBadArguments = errors.New("rpc: arguments do not fit the method")
)

// ServerError is an error returned by a service method, carried back to the
// caller as text (as in net/rpc). The method ran: errors.Is(err,
// ErrApplication) is true, and no policy retries it.
type ServerError string

func (e ServerError) Error() string { return string(e) }

// Is makes errors.Is(err, ErrApplication) true.
func (e ServerError) Is(target error) bool { return target == semantics.ErrApplication }

// RejectedError is a refusal: the request was not run, for the reason its
// Code gives. errors.Is(err, ErrRejected) holds, and so does the code's
// sentinel (semantics.ErrStale, ErrShuttingDown, ErrUnknownMethod, ...);
// errors.As finds the code:
//
//	var re *rpc.RejectedError
//	if errors.As(err, &re) && re.Code == rpc.CodeUnknownMethod { ... }
type RejectedError struct {
	Code Code
	Msg  string
}

func (e *RejectedError) Error() string { return e.Msg }

// Is matches ErrRejected and the sentinel of the error's code.
func (e *RejectedError) Is(target error) bool {
	return target == semantics.ErrRejected || (target != nil && target == codeSentinel(e.Code))
}

func codeSentinel(c Code) error {
	switch c {
	case CodeStale:
		return semantics.ErrStale
	case CodeSessionExpired:
		return semantics.ErrSessionExpired
	case CodeEpochMismatch:
		return semantics.ErrEpochMismatch
	case CodeBadHeader:
		return semantics.ErrBadHeader
	case CodeNotDurable:
		return semantics.ErrNotDurable
	case CodeShuttingDown:
		return ErrShuttingDown
	case CodeTooLarge:
		return ErrMessageTooLarge
	case CodeUnknownMethod:
		return ErrUnknownMethod
	case CodeBadArguments:
		return ErrBadArguments
	}
	return nil
}

// reject builds a not-executed refusal with code.
func reject(code Code, format string, args ...any) error {
	return &RejectedError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// errClosed is the error of a call made on a closed client: not sent, and
// permanent (no policy waits for a closed client to reopen).
func errClosed() error {
	return semantics.Permanent(semantics.NotSent(ErrClientClosed))
}
