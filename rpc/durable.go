package rpc

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/semrpc/semrpc/semantics"
)

// WithDurableStore makes the server's at-most-once table durable, for
// exactly-once calls: the server uses the table st rebuilt from its records
// (so it keeps its epoch across restarts, and retries of calls that
// completed before a crash get their original replies), tells clients in
// the session handshake that it is durable, and runs every call in one of
// st's transactions: each NEW at-most-once or exactly-once call through
// st.Execute, so that the call's completion record commits with the
// method's effects before the reply is sent, and each no-retry or
// at-least-once call (which has no session, so no record) through
// st.Transact. It takes the place of WithTable: give one or the other (of
// both, the last given is used).
//
// Methods of a durable server keep their state in the store's transaction,
// whatever the call's policy: they take a context.Context first (Register
// refuses a method without one, unless OutsideTransaction declares it) and reach
// the transaction with semantics.TxOf[T](ctx), T being the store's
// transaction type (*bbolt.Tx with the store of package
// github.com/semrpc/semrpc/stores/boltstore, also found with boltstore.TxOf
// or through its Store's Update and View with that ctx; pgx.Tx with
// stores/pgstore, also found with pgstore.TxOf). Any implementation of
// semantics.Store will do; doc/stores.md is the recipe. The stores live in
// packages of their own, so that this package links no storage engine. One rule holds for every call: a method that returns an error
// has everything it wrote rolled back (an at-most-once or exactly-once call
// still gets its completion record, with the error); a method that returns nil has its
// writes committed. A method may be run more than once inside rolled-back
// transactions, so it must have no effect outside the transaction (no
// service state in memory beside the store: see doc/stores.md), must not
// modify its arguments, must not block (concurrent calls may share its
// transaction and wait for it: with a boltstore.Store, a method that sleeps
// or waits on the network holds up every other call of the server), and its
// reply must not keep the transaction's memory. With
// a boltstore.Store it must not use its DB method: its call holds the database's
// only writer lock, so DB().Update would wait forever.
func WithDurableStore(st semantics.Store) Option {
	return func(o *options) { o.table, o.durableStore = st.Table(), st }
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
		return nil, reject(CodeRejected, "rpc: durable store: %v", err)
	}
	out.Size = replySize(out.Reply, out.Err) // the table keeps it in memory too
	s.table.Finish(tk, out)
	return storedOutcome(m, out)
}

// transactDurable runs a call without a header in a transaction of the
// table's durable store, so that its method reaches the transaction as
// every method of a durable server does, and an application error rolls
// back its writes.
func (s *Server) transactDurable(ctx context.Context, m *methodType, argv reflect.Value) (any, error) {
	out, err := s.table.Store().Transact(ctx, func(ctx context.Context) (any, error) {
		return s.invoke(ctx, m, argv)
	})
	if err != nil {
		if errors.Is(err, semantics.ErrRejected) || errors.Is(err, semantics.ErrMaybeExecuted) {
			return nil, err
		}
		return nil, reject(CodeRejected, "rpc: durable store: %v", err)
	}
	return out.Reply, out.Err
}

// storedOutcome returns an outcome's reply and error, decoding a reply read
// back from a durable store into m's reply type.
func storedOutcome(m *methodType, out semantics.Outcome) (any, error) {
	sr, ok := out.Reply.(*semantics.StoredReply)
	if !ok {
		return out.Reply, out.Err
	}
	if sr.Method != m.name {
		return nil, reject(CodeRejected, "rpc: this call's sequence number was used by a call of %s, not %s", sr.Method, m.name)
	}
	reply := m.newReply()
	if err := sr.Decode(reply.Interface()); err != nil {
		// The call ran; only its reply is lost.
		return nil, semantics.Unusable(fmt.Errorf("rpc: %s ran, but its stored reply is unreadable: %w", m.name, err))
	}
	return reply.Interface(), out.Err
}
