package semantics

import (
	"errors"
	"fmt"
)

// Attempt classes. Every failed attempt is exactly one of these; errors.Is
// on an attempt's error finds its class sentinel.
var (
	// ErrNotSent marks an attempt that never reached the server (dial
	// refused, connection down before the write, context ended before the
	// send). Retrying it is safe under every policy.
	ErrNotSent = errors.New("semrpc: request not sent")

	// ErrMaybeExecuted marks an attempt (or a whole call) that was sent but
	// got no reply: the method may or may not have run.
	ErrMaybeExecuted = errors.New("semrpc: request may have executed")

	// ErrApplication marks an error returned by the service method itself.
	// The method ran; such an error is never retried.
	ErrApplication = errors.New("semrpc: application error")
)

// ErrNotExecuted is the verdict on a whole call that definitely did not run:
// every attempt was either not sent or refused by the server before the
// method was invoked. It is never the class of a single attempt, so on a call
// that gave up errors.Is(err, ErrNotExecuted) and errors.Is(err,
// ErrMaybeExecuted) are never both true.
var ErrNotExecuted = errors.New("semrpc: call definitely not executed")

// Server refusals of at-most-once requests. Each means the method did not
// run for this attempt.
var (
	// ErrStale: the request's sequence number is below what the client has
	// already acknowledged; a late duplicate, never re-run.
	ErrStale = errors.New("semrpc: stale request (already acknowledged)")

	// ErrSessionExpired: the server does not know the session any more (idle
	// longer than its lease). The client opens a new session for calls that
	// were never sent; calls that were sent fail as may-have-executed.
	ErrSessionExpired = errors.New("semrpc: session unknown or expired")

	// ErrEpochMismatch: the server restarted and lost its table since the
	// session was opened, so it cannot tell whether the call ran.
	ErrEpochMismatch = errors.New("semrpc: server restarted (epoch changed)")

	// ErrNotDurable: an exactly-once call reached a server whose table is not
	// durable.
	ErrNotDurable = errors.New("semrpc: server has no durable completion records")

	// ErrBudgetExhausted: a retry was refused by the retry budget.
	ErrBudgetExhausted = errors.New("semrpc: retry budget exhausted")

	// ErrBadHeader: the request's semantics header is malformed.
	ErrBadHeader = errors.New("semrpc: malformed semantics header")

	// ErrRejected: the request was refused before the method ran for a
	// reason other than the ones above (unknown method, undecodable or
	// unencodable arguments, message too large, server shutting down).
	// Specific errors wrap it.
	ErrRejected = errors.New("semrpc: request rejected before execution")
)

// Class is the failure class of one attempt.
type Class uint8

// The classes, in the order of DESIGN.md.
const (
	ClassNone          Class = iota // success
	ClassNotSent                    // never reached the server
	ClassMaybeExecuted              // sent, no reply
	ClassApplication                // the method ran and returned an error
	ClassRejected                   // the server refused it before running the method
)

var classNames = [...]string{"ok", "not sent", "maybe executed", "application error", "rejected"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", c)
}

// ClassOf returns the failure class of an attempt's error. Errors without a
// class are taken as maybe executed, the only safe assumption.
func ClassOf(err error) Class {
	switch {
	case err == nil:
		return ClassNone
	case errors.Is(err, ErrMaybeExecuted):
		return ClassMaybeExecuted
	case errors.Is(err, ErrNotSent):
		return ClassNotSent
	case errors.Is(err, ErrApplication):
		return ClassApplication
	case errors.Is(err, ErrStale), errors.Is(err, ErrSessionExpired), errors.Is(err, ErrEpochMismatch),
		errors.Is(err, ErrNotDurable), errors.Is(err, ErrBadHeader), errors.Is(err, ErrRejected),
		errors.Is(err, ErrNotExecuted):
		return ClassRejected
	}
	return ClassMaybeExecuted
}

// AttemptError is one failed attempt, with its class. errors.Is finds both
// the class sentinel and the wrapped cause.
type AttemptError struct {
	Class Class
	Err   error
}

// NotSent wraps err as a class-1 failure.
func NotSent(err error) error { return &AttemptError{Class: ClassNotSent, Err: err} }

// MaybeExecuted wraps err as a class-2 failure.
func MaybeExecuted(err error) error { return &AttemptError{Class: ClassMaybeExecuted, Err: err} }

func (e *AttemptError) Error() string {
	return e.Class.String() + ": " + e.Err.Error()
}

func (e *AttemptError) Unwrap() error { return e.Err }

// Is matches the class sentinel.
func (e *AttemptError) Is(target error) bool {
	switch e.Class {
	case ClassNotSent:
		return target == ErrNotSent
	case ClassMaybeExecuted:
		return target == ErrMaybeExecuted
	case ClassApplication:
		return target == ErrApplication
	}
	return false
}
