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
// Each replica opens the same database (Open with one URL) and serves with
// rpc.WithDurableStore(st); clients reach them with rpc.DialCluster(ctx,
// "tcp", addrs) and calls made with semantics.ExactlyOnce(). The replicas
// create the service's own tables through Pool before they serve, under
// an advisory lock if they may start together (see Store.Pool).
// examples/kv ("kv server -pg URL", "kv -addrs A,B,C") is a complete
// service; doc/stores.md says how the store works, and what holds.
//
// The package lives beside semantics and rpc, not inside them, so that
// only the programs that import it link pgx.
package pgstore
