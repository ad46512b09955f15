package pgstore_test

import (
	"context"
	"fmt"
	"net"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/pgstore"
)

// Counter keeps its counts in PostgreSQL, in the transaction of each call.
type Counter struct{}

// AddArgs are the arguments of Counter.Add.
type AddArgs struct {
	Name string
	N    int
}

// Add adds args.N to the counter args.Name and replies with its new value.
func (Counter) Add(ctx context.Context, args AddArgs, reply *int) error {
	return pgstore.TxOf(ctx).QueryRow(ctx,
		`INSERT INTO counters (name, n) VALUES ($1, $2)
		 ON CONFLICT (name) DO UPDATE SET n = counters.n + EXCLUDED.n RETURNING n`,
		args.Name, args.N).Scan(reply)
}

// A server whose exactly-once calls commit their completion records in
// the same PostgreSQL transaction as the method's writes. Any number of
// servers may open the same database: they form one exactly-once domain.
func ExampleStore() {
	ctx := context.Background()
	url := pgstore.DatabaseForExamples() // postgres://user@host:5432/db

	st, err := pgstore.Open(ctx, url, nil)
	if err != nil {
		panic(err)
	}
	defer st.Close()
	if _, err := st.Pool().Exec(ctx, "CREATE TABLE counters (name text PRIMARY KEY, n int NOT NULL)"); err != nil {
		panic(err)
	}
	srv := rpc.NewServer(rpc.WithDurableStore(st))
	if err := srv.RegisterName("Counter", Counter{}); err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	c, err := rpc.Dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	var n int
	for range 3 {
		err := c.Call(ctx, "Counter.Add", AddArgs{"visits", 2}, &n, rpc.WithSemantics(semantics.ExactlyOnce()))
		if err != nil {
			panic(err)
		}
	}
	fmt.Println(n, st.Domain() != "")
	// Output: 6 true
}
