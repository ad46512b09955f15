package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Tally adds up what its callers send.
type Tally struct{ n int }

func (c *Tally) Add(delta int, reply *int) error {
	c.n += delta
	*reply = c.n
	return nil
}

// A server interceptor guards the at-most-once session handshake as it
// guards every method: a client without the token gets no session, so it
// cannot make the server keep anything, and the server keeps the replies of
// the sessions it opened within its reply budgets.
func ExampleWithServerInterceptor_sessions() {
	auth := func(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
		md, _ := rpc.FromIncomingContext(ctx)
		if md.First("authorization") != "Bearer s3cret" {
			return fmt.Errorf("unauthenticated call to %s: %w", call.ServiceMethod, rpc.ErrRejected)
		}
		return next(ctx, call)
	}
	table := semantics.NewTable(&semantics.TableConfig{
		MaxReplyBytes:        64 << 20, // all sessions together
		MaxSessionReplyBytes: 4 << 20,  // each session
	})
	srv := rpc.NewServer(rpc.WithServerInterceptor(auth), rpc.WithTable(table))
	if err := srv.Register(new(Tally)); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := rpc.Dial(ctx, "tcp", l.Addr().String(), rpc.WithSemantics(semantics.AtMostOnce()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var n int
	err = client.Call(ctx, "Tally.Add", 1, &n)
	fmt.Println("without a token:", errors.Is(err, rpc.ErrRejected), errors.Is(err, rpc.ErrNotExecuted), srv.Table().Len())

	// The token in the call's context goes with the handshake too.
	authed := rpc.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	err = client.Call(authed, "Tally.Add", 1, &n)
	fmt.Println("with the token:", n, err, srv.Table().Len())
	// Output:
	// without a token: true true 0
	// with the token: 1 <nil> 1
}
