// Package pgstore is a durable semantics.Store on PostgreSQL (through
// github.com/jackc/pgx/v5), for exactly-once calls whose completion
// records live with the service's data, and survive where it survives.
//
// A method of a server made with rpc.WithDurableStore(st) takes a context
// first and reaches the call's transaction with TxOf(ctx): the service's
// rows and the call's completion record commit together, in one
// transaction, before the reply is sent. A duplicate of a call still
// running waits on its record's row lock, and then gets the stored reply.
//
// Several servers on one database form one exactly-once domain (the
// store is a semantics.DomainStore): each sees the others' sessions and
// records, so a call that may have run on a server that died can be sent
// to another, which answers it from the record or runs it exactly once.
// doc/stores.md says how, and what holds.
//
// The package lives beside semantics and rpc, not inside them, so that
// only the programs that import it link pgx.
package pgstore
