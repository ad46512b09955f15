package rpc_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/stores/boltstore"
)

// Bank keeps its balances in the durable store's file, written through
// the call's transaction, so that each deposit commits with the record that
// makes its retries answer instead of run again.
type Bank struct{}

type DepositArgs struct {
	Account string
	Amount  int64
}

type Balance struct {
	Account string
	Amount  int64
}

func (Bank) Deposit(ctx context.Context, args DepositArgs, reply *Balance) error {
	tx := boltstore.TxOf(ctx) // the call's transaction
	b, err := tx.CreateBucketIfNotExists([]byte("balances"))
	if err != nil {
		return err
	}
	var amount int64
	if v := b.Get([]byte(args.Account)); len(v) == 8 {
		amount = int64(binary.BigEndian.Uint64(v))
	}
	amount += args.Amount
	*reply = Balance{Account: args.Account, Amount: amount}
	return b.Put([]byte(args.Account), binary.BigEndian.AppendUint64(nil, uint64(amount)))
}

// startBank serves Bank with the durable store at path, on addr.
func startBank(path, addr string) (stop func(), bound string) {
	st, err := boltstore.Open(path, nil) // creates the directory if missing
	if err != nil {
		log.Fatal(err)
	}
	srv := rpc.NewServer(rpc.WithDurableStore(st))
	if err := srv.Register(Bank{}); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	return func() {
		srv.Close()
		<-done
		st.Close()
	}, l.Addr().String()
}

// An exactly-once service: the server's completion records live in a
// durable store (boltstore, one bbolt file) with the service's own state,
// committed in one transaction per call; the client calls with
// ExactlyOnce. The server restarts between two deposits, and the client
// goes on with the same session.
func ExampleWithDurableStore() {
	dir, err := os.MkdirTemp("", "bank")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data", "bank.db")

	stop, addr := startBank(path, "127.0.0.1:0")
	ctx := context.Background()
	client, err := rpc.Dial(ctx, "tcp", addr, rpc.WithSemantics(semantics.ExactlyOnce()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	deposit := func(amount int64) {
		var bal Balance
		if err := client.Call(ctx, "Bank.Deposit", DepositArgs{Account: "alice", Amount: amount}, &bal); err != nil {
			log.Fatal(err)
		}
		fmt.Println(bal.Account, bal.Amount)
	}
	deposit(10)
	deposit(5)

	stop() // or a crash
	stop, _ = startBank(path, addr)
	defer stop()
	deposit(20)
	// Output:
	// alice 10
	// alice 15
	// alice 35
}
