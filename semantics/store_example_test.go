package semantics_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/semrpc/semrpc/semantics"
)

// A BoltStore runs a call's method in a transaction and commits its
// completion record with it; after a restart, the table it rebuilds answers
// a retry of the call with the original reply.
func ExampleBoltStore() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "calls.db")
	ctx := context.Background()

	st, err := semantics.OpenBoltStore(path, nil)
	if err != nil {
		panic(err)
	}
	id, err := st.Table().Open() // the server's session handshake
	if err != nil {
		panic(err)
	}
	h := semantics.Header{Client: id, Seq: 1, Ack: 1, Epoch: st.Epoch()}
	tk, err := st.Table().Begin(ctx, h)
	if err != nil {
		panic(err)
	}
	out, err := st.Execute(ctx, h, "Greeter.Hello", func(ctx context.Context) (any, error) {
		// Real methods write their state through semantics.TxFrom(ctx).
		reply := "hello"
		return &reply, nil
	})
	if err != nil {
		panic(err)
	}
	st.Table().Finish(tk, out)
	st.Close() // or a crash

	st, err = semantics.OpenBoltStore(path, nil)
	if err != nil {
		panic(err)
	}
	defer st.Close()
	tk, _ = st.Table().Begin(ctx, h) // the retry
	var reply string
	tk.Cached().Reply.(*semantics.StoredReply).Decode(&reply)
	fmt.Println(tk.Run(), reply)
	// Output: false hello
}

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
