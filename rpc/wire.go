package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/semrpc/semrpc/semantics"
)

// The TCP wire is net/rpc's gob protocol: on each connection one gob stream
// per direction, each call a header value followed by a body value. Our
// headers are net/rpc's with extra fields; gob ignores fields the receiver
// does not have, so a stock net/rpc peer reads ours and we read theirs.

// wireRequest is net/rpc's Request plus the semantics header and the
// caller's remaining time.
type wireRequest struct {
	ServiceMethod string
	Seq           uint64
	Sem           *semantics.Header // nil for plain calls and from stock clients
	// Timeout is how long the caller will still wait, in nanoseconds, when
	// the request left; 0 for none. The method's context ends then.
	Timeout int64
	// Metadata is the caller's request metadata (AppendToOutgoingContext);
	// nil, and then not on the wire, when there is none.
	Metadata Metadata

	// The reply metadata the method set, kept here by the server between
	// the method and its response (unexported: never on the wire).
	replyHeader, replyTrailer Metadata
}

// wireResponse is net/rpc's Response plus a code that says what kind of
// error Error holds.
type wireResponse struct {
	ServiceMethod string
	Seq           uint64
	Error         string
	Code          Code // CodeNone when Error is empty or an application error
	// Header and Trailer are the reply metadata the method set (SetHeader,
	// SetTrailer); nil, and then not on the wire, when it set none.
	Header, Trailer Metadata
}

// emptyBody is sent as the body of an error response, as net/rpc does.
type emptyBody struct{}

// Code tells the client what kind of error a response carries. A stock
// net/rpc client sees only the error text.
type Code uint8

// Response codes. Every code but CodeNone, CodeMaybeExecuted,
// CodeReplyTooLarge and CodeReplyUnusable means the method did not run for
// that request.
const (
	CodeNone             Code = iota // no error, or an application error
	CodeRejected                     // refused before running, for another reason
	CodeStale                        // semantics.ErrStale
	CodeSessionExpired               // semantics.ErrSessionExpired
	CodeEpochMismatch                // semantics.ErrEpochMismatch
	CodeBadHeader                    // semantics.ErrBadHeader
	CodeNotDurable                   // semantics.ErrNotDurable
	CodeShuttingDown                 // ErrShuttingDown: not run, safe to send again elsewhere or later
	CodeTooLarge                     // ErrMessageTooLarge: the request was too large
	CodeMaybeExecuted                // the server cannot tell whether the method's effects persisted
	CodeUnknownMethod                // ErrUnknownMethod
	CodeReplyTooLarge                // the method ran; its reply is over the message limit
	CodeReplyUnusable                // the method ran; its reply could not be encoded
	CodeDeadlineExceeded             // the caller's deadline passed while the method ran: it may have had effects
	CodeInterrupted                  // the method was stopped (its server closing) before it answered: it may have had effects
	CodeBadArguments                 // ErrBadArguments: the arguments do not fit the method's argument type
)

var codeNames = [...]string{"none", "rejected", "stale", "session expired", "epoch mismatch", "bad header",
	"not durable", "shutting down", "too large", "maybe executed", "unknown method", "reply too large", "reply unusable",
	"deadline exceeded", "interrupted", "bad arguments"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", c)
}

// Reserved methods, served by the server core itself.
const (
	// openMethod opens an at-most-once session: the server creates it and
	// returns its id, lease and limits.
	openMethod = "_semrpc.Open"
	// closeMethod ends sessions the client is done with.
	closeMethod = "_semrpc.Close"
	// goAwayMethod names the notice a server sends on every connection
	// when it starts to shut down, with Seq goAwaySeq (a number no client
	// reaches, so a stock net/rpc client ignores it).
	goAwayMethod = "_semrpc.GoAway"
	goAwaySeq    = ^uint64(0)
)

// OpenArgs are the arguments of the session handshake.
type OpenArgs struct {
	Version int
	// Close lists sessions of this client that it is done with; the server
	// ends them before opening the new one.
	Close []semantics.ClientID
}

// OpenReply is the server's answer to the session handshake.
type OpenReply struct {
	Epoch   uint64
	Durable bool
	// Client is the new session's id, made by the server. A zero id comes
	// from a server that predates explicit sessions; the client refuses it.
	Client semantics.ClientID
	// Lease is how long, in nanoseconds, the server keeps the session
	// after its last request.
	Lease int64
	// MaxCalls is how many unacknowledged calls the server keeps for the
	// session; the client's window never exceeds it.
	MaxCalls int
	// Domain names the exactly-once domain of the server's durable store
	// (semantics.DomainStore): every server answering the same non-empty
	// Domain sees this session and its records, so a cluster client may
	// send a call that may have run on one of them again to another.
	// Empty (and absent, from servers that predate it) means no domain.
	Domain string
}

// CloseArgs ends sessions; the reply is a CloseReply.
type CloseArgs struct {
	IDs []semantics.ClientID
}

// CloseReply is the answer to CloseArgs.
type CloseReply struct {
	Closed int
}

// EncodeError turns an error returned by the server core into the code and
// text a transport sends back. Custom transports use it with DecodeError.
// The text is at most MaxErrorBytes, and a mark saying how much was cut.
func EncodeError(err error) (code Code, msg string) {
	if err == nil {
		return CodeNone, ""
	}
	msg = cutText(err.Error(), MaxErrorBytes)
	if msg == "" {
		msg = "rpc: error with empty text"
	}
	var re *RejectedError
	switch {
	case errors.Is(err, semantics.ErrApplication):
		return CodeNone, msg
	case errors.Is(err, semantics.ErrReplyUnusable):
		if errors.Is(err, ErrMessageTooLarge) {
			return CodeReplyTooLarge, msg
		}
		return CodeReplyUnusable, msg
	case errors.Is(err, semantics.ErrMaybeExecuted) && errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded, msg
	case errors.Is(err, semantics.ErrMaybeExecuted) && errors.Is(err, errInterrupted):
		return CodeInterrupted, msg
	case errors.Is(err, semantics.ErrMaybeExecuted):
		return CodeMaybeExecuted, msg
	case errors.As(err, &re) && re.Code != CodeNone:
		return re.Code, msg
	case errors.Is(err, semantics.ErrStale):
		return CodeStale, msg
	case errors.Is(err, semantics.ErrSessionExpired):
		return CodeSessionExpired, msg
	case errors.Is(err, semantics.ErrEpochMismatch):
		return CodeEpochMismatch, msg
	case errors.Is(err, semantics.ErrBadHeader):
		return CodeBadHeader, msg
	case errors.Is(err, semantics.ErrNotDurable):
		return CodeNotDurable, msg
	case errors.Is(err, ErrShuttingDown):
		return CodeShuttingDown, msg
	case errors.Is(err, ErrMessageTooLarge):
		return CodeTooLarge, msg
	case errors.Is(err, ErrUnknownMethod):
		return CodeUnknownMethod, msg
	case errors.Is(err, semantics.ErrRejected):
		return CodeRejected, msg
	}
	return CodeNone, msg
}

// Texts a stock net/rpc server answers for a method it does not have; the
// method did not run.
var stockUnknownPrefixes = []string{"rpc: can't find service ", "rpc: can't find method ", "rpc: service/method request ill-formed"}

// DecodeError is the inverse of EncodeError: it rebuilds an error whose
// class and sentinel survive the trip.
func DecodeError(code Code, msg string) error {
	if code == CodeNone && msg == "" {
		return nil
	}
	switch code {
	case CodeNone:
		for _, p := range stockUnknownPrefixes {
			if strings.HasPrefix(msg, p) {
				// A stock net/rpc server's refusal: the same verdict as ours.
				return &RejectedError{Code: CodeUnknownMethod, Msg: msg}
			}
		}
		return ServerError(msg)
	case CodeMaybeExecuted:
		return semantics.MaybeExecuted(errors.New(unclassed(msg)))
	case CodeDeadlineExceeded:
		// The server recorded this as the call's outcome: every retry
		// would get it again. Final.
		msg = strings.TrimSuffix(unclassed(msg), ": "+context.DeadlineExceeded.Error())
		return semantics.Permanent(semantics.MaybeExecuted(fmt.Errorf("%s: %w", msg, context.DeadlineExceeded)))
	case CodeInterrupted:
		return semantics.Permanent(semantics.MaybeExecuted(&textOf{unclassed(msg), errInterrupted}))
	case CodeReplyTooLarge:
		return semantics.Unusable(fmt.Errorf("%s: %w", msg, ErrMessageTooLarge))
	case CodeReplyUnusable:
		return semantics.Unusable(errors.New(msg))
	case CodeShuttingDown:
		// Not run, and the server says so before closing: safe to send
		// again, so retrying policies wait for a server and try again.
		return semantics.NotSent(&RejectedError{Code: code, Msg: msg})
	case CodeRejected, CodeStale, CodeSessionExpired, CodeEpochMismatch, CodeBadHeader,
		CodeNotDurable, CodeTooLarge, CodeUnknownMethod, CodeBadArguments:
		return &RejectedError{Code: code, Msg: msg}
	}
	// A code this side does not know (a newer or damaged peer): the only
	// safe reading is that the method may have run.
	return semantics.MaybeExecuted(errors.New(msg))
}

// unclassed returns the text of a maybe-executed error from the wire
// without the class name that the server's text begins with, which the
// decoded error adds again: "maybe executed" once, not twice.
func unclassed(msg string) string {
	if rest, ok := strings.CutPrefix(msg, semantics.ClassMaybeExecuted.String()+": "); ok && rest != "" {
		return rest
	}
	return msg
}

// textOf is an error read off the wire: its peer's text, and the sentinel
// it stands for.
type textOf struct {
	msg  string
	kind error
}

func (e *textOf) Error() string { return e.msg }
func (e *textOf) Unwrap() error { return e.kind }
