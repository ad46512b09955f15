package semantics

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
)

// Store keeps a Table's completion records durably, for exactly-once calls
// that survive server crashes. A server with a Store runs every call in one
// of its transactions: each NEW call (one that its Table's Begin admits for
// execution) through Execute, which commits the call's completion record
// with the method's effects, and each call without a header (no-retry,
// at-least-once) through Transact, which commits the method's effects
// alone. Duplicates are answered from the Table as usual.
//
// One rule holds for both: a method that returns an application error
// (a non-nil error from fn) has everything it wrote rolled back; under
// Execute the completion record, with that error, still commits. A method
// that returns nil has its writes committed.
//
// The interface names no storage engine: a store runs methods in
// transactions of its own type, which it hands them with ContextWithTx and
// they find with TxOf. Implementations live in packages of their own
// (github.com/semrpc/semrpc/stores/boltstore on go.etcd.io/bbolt,
// stores/pgstore on PostgreSQL), so that this package links no storage
// engine; doc/stores.md is the recipe for another (its table, its records, and the
// rules its methods must keep). A plain Table, with no Store, is the
// in-memory default that at-most-once calls use.
type Store interface {
	// Table returns the table the store rebuilt when it was opened: its
	// epoch is the store's (so that sessions survive restarts), it holds
	// every completion record the store kept, and its Store is this store.
	Table() *Table

	// Execute runs fn, the method of the call h, in a durable transaction
	// and commits the call's completion record (h's client and seq,
	// method, fn's reply and error) before it returns: in the same
	// transaction as fn's writes if fn returns a nil error; if fn returns
	// an (application) error, fn's writes are rolled back and the record
	// commits alone. Effects fn makes outside the transaction (see TxOf)
	// are not covered, and fn may be run more than once (only the last
	// run's effects, reply and error count), so its effects must live in
	// the transaction only.
	//
	// A nil error means the outcome is durable: Outcome holds fn's reply
	// and error, or, if the store already held a record of h (a table and
	// store that disagree), that record's outcome, decoded lazily (see
	// StoredReply), with fn not run. A non-nil error means nothing of the
	// call was committed, or, if it wraps ErrMaybeExecuted, that a commit
	// failed and only a restart can tell; otherwise it wraps ErrStale if
	// h was acknowledged already and ErrRejected if not. An error of fn
	// that wraps ErrMaybeExecuted (a method stopped by its server's
	// shutdown, say) is not the call's answer: fn's writes are rolled back,
	// nothing is recorded, and Execute returns that error.
	Execute(ctx context.Context, h Header, method string, fn func(ctx context.Context) (reply any, err error)) (Outcome, error)

	// OpenSession makes the session id, just opened in the store's table,
	// durable before its client learns of it: a server that crashes
	// between the handshake and the session's first commit must still know
	// the session after its restart, or a retry of that first call would be
	// refused as unknown although nothing ran. A non-nil error means the
	// session must not be used (the table closes it).
	OpenSession(id ClientID) error

	// Transact runs fn, the method of a call without a header, in a
	// durable transaction and commits fn's writes if fn returns a nil
	// error; if fn returns an (application) error, its writes are rolled
	// back. No completion record is kept. As for Execute, fn may be run
	// more than once and must have no effect outside the transaction.
	//
	// A nil error means Outcome holds the last run's reply and error, and
	// its writes (none after an application error) are durable. A non-nil
	// error is the store's: fn's effects were not committed (the error
	// wraps ErrRejected), or the commit failed and only a restart can tell
	// (it wraps ErrMaybeExecuted, and the store refuses every call from
	// then on).
	Transact(ctx context.Context, fn func(ctx context.Context) (reply any, err error)) (Outcome, error)
}

// ErrStoreFailed is wrapped by the errors of calls refused because a
// commit failed (a write or fsync error): from then on, what is on disk is
// only known after a restart, so the store runs nothing more (later calls
// are refused, not executed). The call whose commit failed is reported as
// may-have-executed, since its record may have reached the disk; after a
// restart a retry of it gets that record's reply. Restart the server when
// calls fail with it.
var ErrStoreFailed = errors.New("semrpc: durable store failed")

type txKey struct{}

// ContextWithTx returns a context carrying tx, the transaction a store runs
// a method in. A Store calls it in Execute and Transact before it runs the
// method, with a value of its own transaction type (a *bbolt.Tx for
// boltstore); the method finds it with TxOf, or with the store's own
// accessor (boltstore.TxOf). Nothing else in semrpc looks at tx.
func ContextWithTx(ctx context.Context, tx any) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// TxOf returns the transaction that ctx runs in, if its store's
// transactions are of type T, and whether there is one. Methods of a
// durable server reach their store through it, whatever the store:
//
//	tx, ok := semantics.TxOf[*bbolt.Tx](ctx) // boltstore; see also boltstore.TxOf
//
// The transaction ends when the method returns; keep no reference to it,
// or to memory it hands out, beyond that.
func TxOf[T any](ctx context.Context) (T, bool) {
	tx, ok := ctx.Value(txKey{}).(T)
	return tx, ok
}

// StoredReply is the reply of a completion record read back from a durable
// store, as found in Outcome.Reply after a restart: its bytes are decoded
// on demand into the method's reply type, which only the server knows.
type StoredReply struct {
	// Method is the "Service.Method" the record was made for.
	Method string
	// Data is the reply, gob-encoded on its own (type information
	// included).
	Data []byte
}

// Decode decodes the reply into v, a pointer to a value of the method's
// reply type (the type the reply had when it was stored).
func (r *StoredReply) Decode(v any) error {
	if len(r.Data) == 0 { // the method left no reply value
		return nil
	}
	if err := gob.NewDecoder(bytes.NewReader(r.Data)).Decode(v); err != nil {
		return fmt.Errorf("semantics: decoding stored reply of %s: %w", r.Method, err)
	}
	return nil
}

// EncodeReply gob-encodes a reply for a completion record: the bytes a
// store keeps and hands back, after a restart, as StoredReply.Data (Decode
// reverses it). A nil reply encodes as no bytes.
func EncodeReply(method string, reply any) ([]byte, error) {
	var b bytes.Buffer
	if reply == nil {
		return nil, nil
	}
	if err := gob.NewEncoder(&b).Encode(reply); err != nil {
		return nil, fmt.Errorf("semantics: encoding reply of %s: %w", method, err)
	}
	return b.Bytes(), nil
}

// RecordedError is an application error read back from a completion record:
// the method ran and returned an error with this text. errors.Is(err,
// ErrApplication) holds, so it travels to the client as the method's error.
type RecordedError string

func (e RecordedError) Error() string { return string(e) }

// Is makes errors.Is(err, ErrApplication) true.
func (e RecordedError) Is(target error) bool { return target == ErrApplication }
