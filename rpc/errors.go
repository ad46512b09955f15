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
	ErrNotExecuted   = semantics.ErrNotExecuted
	ErrRejected      = semantics.ErrRejected
)

var (
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("rpc: server closed")

	// ErrClientClosed is returned by calls made on, or pending in, a closed client.
	ErrClientClosed = errors.New("rpc: client closed")

	// ErrMessageTooLarge is reported when a message exceeds the maximum
	// message size (DefaultMaxMessageSize unless configured).
	ErrMessageTooLarge = errors.New("rpc: message too large")

	// ErrConnLost is wrapped by the errors of calls pending on a connection
	// that broke.
	ErrConnLost = errors.New("rpc: connection lost")

	// ErrShuttingDown is the server's answer to requests that arrive while
	// it shuts down; the method did not run.
	ErrShuttingDown = errors.New("rpc: server shutting down")
)

// ServerError is an error returned by a service method, carried back to the
// caller as text (as in net/rpc). The method ran: errors.Is(err,
// ErrApplication) is true, and no policy retries it.
type ServerError string

func (e ServerError) Error() string { return string(e) }

// Is makes errors.Is(err, ErrApplication) true.
func (e ServerError) Is(target error) bool { return target == semantics.ErrApplication }

// rejection is a server refusal that happened before the method ran.
type rejection struct {
	msg  string
	kind error // a specific sentinel (ErrShuttingDown, ErrMessageTooLarge, ...), may be nil
}

func (e *rejection) Error() string { return e.msg }

func (e *rejection) Is(target error) bool {
	return target == semantics.ErrRejected || (e.kind != nil && target == e.kind)
}

// reject builds a not-executed refusal wrapping kind.
func reject(kind error, format string, args ...any) error {
	return &rejection{msg: fmt.Sprintf(format, args...), kind: kind}
}
