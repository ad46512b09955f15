package semantics_test

import (
	"context"
	"fmt"

	"github.com/semrpc/semrpc/semantics"
)

// Ledger is a transaction type of some store other than bbolt: whatever
// the store hands its methods.
type Ledger struct{ balance map[string]int }

// A store runs each method in a transaction of its own type, and the method
// finds it with TxOf: the Store interface names no storage engine.
func ExampleTxOf() {
	deposit := func(ctx context.Context, who string, n int) error {
		tx, ok := semantics.TxOf[*Ledger](ctx)
		if !ok {
			return fmt.Errorf("deposit: not in a ledger transaction")
		}
		tx.balance[who] += n
		return nil
	}
	tx := &Ledger{balance: map[string]int{}}
	ctx := semantics.ContextWithTx(context.Background(), tx) // what the store does
	fmt.Println(deposit(ctx, "alice", 10), tx.balance["alice"])
	fmt.Println(deposit(context.Background(), "bob", 1))
	// Output:
	// <nil> 10
	// deposit: not in a ledger transaction
}
