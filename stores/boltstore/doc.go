// Package boltstore is a durable semantics.Store in one bbolt file
// (go.etcd.io/bbolt), for exactly-once calls on one server: the service
// keeps its own state in buckets of the same file, and each call's
// completion record commits in the same transaction as the method's
// writes, before the reply is sent.
//
// It lives beside the semantics and rpc packages, not inside them, so that
// only the programs that import it link bbolt:
//
//	st, err := boltstore.Open("data/kv.db", nil) // creates data/ if missing
//	if err != nil { ... }
//	defer st.Close()
//	srv := rpc.NewServer(rpc.WithDurableStore(st))
//
// A method of that server takes a context first and reaches the call's
// transaction with TxOf(ctx) (semantics.TxOf[*bbolt.Tx] is the same), or
// through Store.Update and Store.View with its ctx. doc/stores.md compares
// the stores and is the recipe for another.
package boltstore
