package semantics

import (
	"errors"
	"fmt"
	"sync"
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

	// ErrReplyUnusable marks an attempt whose method ran but whose reply
	// cannot be used: the client could not decode it, or the server could
	// not send it (too large, not encodable). The method ran; such an error
	// is never retried, and it is not an application error.
	ErrReplyUnusable = errors.New("semrpc: reply unusable")
)

// ErrNotExecuted is the verdict on a whole call that definitely did not run:
// every attempt was either not sent or refused by the server before the
// method was invoked. A single not-sent attempt (NotSent) matches it too, so
// "did it run?" takes one check whatever the error. On a *GiveUpError
// errors.Is(err, ErrNotExecuted) and errors.Is(err, ErrMaybeExecuted) are
// never both true: the give-up answers with its verdict only (see
// GiveUpError.Unwrap).
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

// kindError is a sentinel with a text of its own that also matches a
// broader sentinel, kind, whose text it does not repeat.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Class is the failure class of one attempt.
type Class uint8

// The classes, in the order of DESIGN.md.
const (
	ClassNone          Class = iota // success
	ClassNotSent                    // never reached the server
	ClassMaybeExecuted              // sent, no reply
	ClassApplication                // the method ran and returned an error
	ClassRejected                   // the server refused it before running the method
	ClassUnusable                   // the method ran but its reply cannot be used
)

var classNames = [...]string{"ok", "not sent", "maybe executed", "application error", "rejected", "reply unusable"}

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
	case errors.Is(err, ErrReplyUnusable):
		return ClassUnusable
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
// the class sentinel and the wrapped cause; a not-sent attempt also matches
// ErrNotExecuted.
type AttemptError struct {
	Class Class
	Err   error
}

// NotSent wraps err as a class-1 failure.
func NotSent(err error) error { return &AttemptError{Class: ClassNotSent, Err: err} }

// MaybeExecuted wraps err as a class-2 failure.
func MaybeExecuted(err error) error { return &AttemptError{Class: ClassMaybeExecuted, Err: err} }

// Unusable wraps err as an attempt whose method ran but whose reply cannot
// be used (ClassUnusable): Runner.Run returns it unchanged, never retried.
func Unusable(err error) error { return &AttemptError{Class: ClassUnusable, Err: err} }

func (e *AttemptError) Error() string {
	return e.Class.String() + ": " + e.Err.Error()
}

func (e *AttemptError) Unwrap() error { return e.Err }

// Is matches the class sentinel, and ErrNotExecuted for a not-sent attempt.
func (e *AttemptError) Is(target error) bool {
	switch e.Class {
	case ClassNotSent:
		return target == ErrNotSent || target == ErrNotExecuted
	case ClassMaybeExecuted:
		return target == ErrMaybeExecuted
	case ClassApplication:
		return target == ErrApplication
	case ClassUnusable:
		return target == ErrReplyUnusable
	}
	return false
}

// isClassSentinel reports whether target names a class or a verdict, which
// a give-up answers with its own verdict only.
func isClassSentinel(target error) bool {
	switch target {
	case ErrNotSent, ErrMaybeExecuted, ErrApplication, ErrReplyUnusable, ErrNotExecuted:
		return true
	}
	return false
}

// Permanent marks err so that Runner.Run gives up after the attempt that
// returned it, under every policy: retrying cannot help (a TLS certificate
// that fails verification, an unknown method). err keeps its class, and
// errors.Is and errors.As see through the mark. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent. It holds for a *GiveUpError that stopped at a permanent error.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// FailureGroup ties together the failures of several calls that have one
// cause, so that the retry budget pays for their retries once. A transport
// that loses a connection wraps the error of every call pending on it with
// one new group (Grouped); the first of those calls to retry asks the budget
// (RetryBudget.TryRetry) and, if allowed, marks the group paid; the others'
// retries are then not charged. A group must not outlive its cause: use a
// new one per lost connection. Its zero value is ready; it is safe for
// concurrent use.
type FailureGroup struct {
	mu   sync.Mutex // protects paid, and serializes the first payment
	paid bool
}

// pay charges one retry of the group to b, once: it reports whether the
// retry may go ahead.
func (g *FailureGroup) pay(b RetryBudget) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paid {
		return true
	}
	g.paid = b.TryRetry()
	return g.paid
}

// Grouped returns err marked as one of the failures of g. err keeps its
// class, and errors.Is and errors.As see through the mark. Grouped(nil, g)
// is nil and Grouped(err, nil) is err.
func Grouped(err error, g *FailureGroup) error {
	if err == nil || g == nil {
		return err
	}
	return &groupedError{err: err, group: g}
}

type groupedError struct {
	err   error
	group *FailureGroup
}

func (e *groupedError) Error() string               { return e.err.Error() }
func (e *groupedError) Unwrap() error               { return e.err }
func (e *groupedError) failureGroup() *FailureGroup { return e.group }

// grouper is what errors.As looks for to find an error's FailureGroup.
type grouper interface {
	error
	failureGroup() *FailureGroup
}

// groupOf returns the FailureGroup that err carries, or nil.
func groupOf(err error) *FailureGroup {
	var g grouper
	if errors.As(err, &g) {
		return g.failureGroup()
	}
	return nil
}
