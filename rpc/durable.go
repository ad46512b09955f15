package rpc

import (
	"context"
	"errors"
	"reflect"

	"github.com/semrpc/semrpc/semantics"
)

// WithDurableStore makes the server's at-most-once table durable, for
// exactly-once calls: the server uses the table st rebuilt from its records
// (so it keeps its epoch across restarts, and retries of calls that
// completed before a crash get their original replies), tells clients in
// the session handshake that it is durable, and runs every NEW at-most-once
// or exactly-once call through st.Execute, so that the call's completion
// record commits with the method's effects before the reply is sent. It
// replaces WithTable.
//
// Methods of a durable server keep their state in the store's transaction:
// with a semantics.BoltStore, they take a context.Context first and reach
// the transaction with semantics.TxFrom(ctx) (or BoltStore.Update and
// View). A method may be run more than once inside rolled-back
// transactions, so it must have no effect outside the transaction, must not
// modify its arguments, must not block (concurrent calls share its
// transaction), and its reply must not keep the transaction's memory. An
// application error does not roll back what the method wrote: it commits
// with the record, as the call's outcome. Calls without a header (no-retry,
// at-least-once) run outside the store's transactions.
func WithDurableStore(st semantics.Store) Option {
	return func(o *options) { o.table = st.Table() }
}

// executeDurable runs a NEW call through the table's durable store.
func (s *Server) executeDurable(ctx context.Context, tk *semantics.Ticket, m *methodType, h *semantics.Header, argv reflect.Value) (any, error) {
	out, err := s.table.Store().Execute(ctx, *h, m.name, func(ctx context.Context) (any, error) {
		return s.invoke(ctx, m, argv)
	})
	if err != nil {
		// Nothing was committed (or, for a failed commit, only a restart
		// will tell and the store refuses everything until then): a retry
		// may run the call as NEW.
		s.table.Abort(tk, err)
		if errors.Is(err, semantics.ErrStale) || errors.Is(err, semantics.ErrRejected) ||
			errors.Is(err, semantics.ErrMaybeExecuted) {
			return nil, err
		}
		return nil, reject(nil, "rpc: durable store: %v", err)
	}
	s.table.Finish(tk, out)
	return storedOutcome(m, out)
}

// storedOutcome returns an outcome's reply and error, decoding a reply read
// back from a durable store into m's reply type.
func storedOutcome(m *methodType, out semantics.Outcome) (any, error) {
	sr, ok := out.Reply.(*semantics.StoredReply)
	if !ok {
		return out.Reply, out.Err
	}
	if sr.Method != m.name {
		return nil, reject(nil, "rpc: this call's sequence number was used by a call of %s, not %s", sr.Method, m.name)
	}
	reply := m.newReply()
	if err := sr.Decode(reply.Interface()); err != nil {
		// The call ran; only its reply is lost.
		return nil, ServerError("rpc: call ran, but its stored reply is unreadable: " + err.Error())
	}
	return reply.Interface(), out.Err
}
