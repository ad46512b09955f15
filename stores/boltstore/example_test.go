package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
	"go.etcd.io/bbolt"
)

// A Store runs a call's method in a transaction and commits its
// completion record with it; after a restart, the table it rebuilds answers
// a retry of the call with the original reply.
func ExampleStore() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "calls.db")
	ctx := context.Background()

	st, err := boltstore.Open(path, nil)
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
		// Real methods write their state through TxOf(ctx), a *bbolt.Tx.
		reply := "hello"
		return &reply, nil
	})
	if err != nil {
		panic(err)
	}
	st.Table().Finish(tk, out)
	st.Close() // or a crash

	st, err = boltstore.Open(path, nil)
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

// A method of a durable server writes its state through the call's
// transaction, which TxOf finds in its context.
func ExampleTxOf() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	st, err := boltstore.Open(filepath.Join(dir, "data", "kv.db"), nil)
	if err != nil {
		panic(err)
	}
	defer st.Close()
	put := func(ctx context.Context) (any, error) {
		tx := boltstore.TxOf(ctx)
		b, err := tx.CreateBucketIfNotExists([]byte("kv"))
		if err != nil {
			return nil, err
		}
		return nil, b.Put([]byte("k"), []byte("v"))
	}
	if _, err := st.Transact(context.Background(), put); err != nil { // what the server does
		panic(err)
	}
	_ = st.View(context.Background(), func(tx *bbolt.Tx) error {
		fmt.Printf("%s\n", tx.Bucket([]byte("kv")).Get([]byte("k")))
		return nil
	})
	fmt.Println(boltstore.TxOf(context.Background()) == nil) // outside a call
	// Output:
	// v
	// true
}
