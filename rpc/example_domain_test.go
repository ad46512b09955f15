package rpc_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
)

// ordersStore is a bbolt store that several servers share: it names their
// exactly-once domain.
type ordersStore struct{ *boltstore.Store }

func (ordersStore) Domain() string { return "orders" }

// Teller is a durable service that answers with its server's name.
type Teller struct{ name string }

func (t *Teller) Name(ctx context.Context, _ struct{}, reply *string) error {
	*reply = t.name
	return nil
}

// Servers that share one durable store form an exactly-once domain, and
// say so when a session opens. A cluster client balances exactly-once
// calls like any others, in a session per server; a call that may have
// run on a server that is then cut off is sent again, in the same session,
// to another server of the domain, which answers it from its record.
func ExampleDialCluster_exactlyOnceDomain() {
	dir, err := os.MkdirTemp("", "orders")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	st, err := boltstore.Open(filepath.Join(dir, "orders.db"), nil)
	if err != nil {
		panic(err)
	}
	defer st.Close()

	var addrs []string
	for _, name := range []string{"a", "b"} {
		srv := rpc.NewServer(rpc.WithDurableStore(ordersStore{st}), rpc.WithLogger(log.New(io.Discard, "", 0)))
		if err := srv.Register(&Teller{name: name}); err != nil {
			panic(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		done := make(chan struct{})
		go func() {
			srv.Serve(l)
			close(done)
		}()
		defer func() {
			srv.Close()
			<-done
		}()
		addrs = append(addrs, l.Addr().String())
	}

	ctx := context.Background()
	c, err := rpc.DialCluster(ctx, "tcp", addrs, rpc.WithSemantics(semantics.ExactlyOnce()))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ran := map[string]int{}
	for range 4 {
		var who string
		if err := c.Call(ctx, "Teller.Name", struct{}{}, &who); err != nil {
			panic(err)
		}
		ran[who]++
	}
	fmt.Println(ran)
	for _, s := range c.Servers() {
		fmt.Println(s.Domain)
	}
	// Output:
	// map[a:2 b:2]
	// orders
	// orders
}
