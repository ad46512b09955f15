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

// Greeter reads the caller's metadata and answers with some of its own.
type Greeter struct{}

func (Greeter) Hello(ctx context.Context, name string, reply *string) error {
	md, _ := rpc.FromIncomingContext(ctx)
	*reply = fmt.Sprintf("hello %s from tenant %s", name, md.First("tenant"))
	rpc.SetHeader(ctx, rpc.Pairs("server-version", "1.2"))
	rpc.SetTrailer(ctx, rpc.Pairs("cost", "3"))
	return nil
}

// WhoAmI answers with what the server knows of its caller.
func (Greeter) WhoAmI(ctx context.Context, _ int, reply *string) error {
	p, ok := rpc.PeerFromContext(ctx)
	if !ok {
		return errors.New("no peer")
	}
	host, _, _ := net.SplitHostPort(p.Addr.String())
	*reply = fmt.Sprintf("%s %s, TLS %v", p.Addr.Network(), host, p.TLS != nil)
	return nil
}

// serveGreeter serves Greeter on a loopback port with the given options.
func serveGreeter(opts ...rpc.Option) (addr string, stop func()) {
	srv := rpc.NewServer(opts...)
	if err := srv.Register(Greeter{}); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), func() { srv.Shutdown(context.Background()) }
}

// Metadata travels both ways: the caller's with the request, the method's
// header and trailer with the reply.
func ExampleAppendToOutgoingContext() {
	addr, stop := serveGreeter()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := rpc.Dial(ctx, "tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx = rpc.AppendToOutgoingContext(ctx, "tenant", "acme")
	var reply string
	var header, trailer rpc.Metadata
	if err := client.Call(ctx, "Greeter.Hello", "ada", &reply, rpc.WithHeader(&header), rpc.WithTrailer(&trailer)); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply)
	fmt.Println("header:", header)
	fmt.Println("trailer:", trailer)
	// Output:
	// hello ada from tenant acme
	// header: server-version="1.2"
	// trailer: cost="3"
}

// A method reads the caller's metadata from its context.
func ExampleFromIncomingContext() {
	// Servers put the request's metadata in the method's context; a test
	// can do the same to call a method directly.
	ctx := rpc.NewIncomingContext(context.Background(), rpc.Pairs("tenant", "blue"))
	var reply string
	Greeter{}.Hello(ctx, "bob", &reply)
	fmt.Println(reply)
	// Output: hello bob from tenant blue
}

func ExampleMetadata() {
	md := rpc.Pairs("Tenant", "acme", "role", "reader", "role", "auditor")
	md.Append("request-id", "7")
	fmt.Println(md.Get("tenant"), md.Get("ROLE"), md.First("request-id"))
	fmt.Println(md.Validate())
	fmt.Println(errors.Is(rpc.Pairs("bad key", "v").Validate(), rpc.ErrBadMetadata))
	// Output:
	// [acme] [reader auditor] 7
	// <nil>
	// true
}

// The method's context tells who called: address, and TLS state with the
// client's certificate under mutual TLS.
func ExamplePeerFromContext() {
	addr, stop := serveGreeter()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := rpc.Dial(ctx, "tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var who string
	if err := client.Call(ctx, "Greeter.WhoAmI", 0, &who); err != nil {
		log.Fatal(err)
	}
	fmt.Println(who)
	// Output: tcp 127.0.0.1, TLS false
}

// An auth interceptor: the caller puts a token in metadata, the server
// refuses requests without a valid one before the method runs, so the
// caller learns that nothing ran.
func ExampleWithServerInterceptor_auth() {
	auth := func(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
		md, _ := rpc.FromIncomingContext(ctx)
		if md.First("authorization") != "Bearer s3cret" {
			return fmt.Errorf("unauthenticated call to %s: %w", call.ServiceMethod, rpc.ErrRejected)
		}
		return next(ctx, call)
	}
	addr, stop := serveGreeter(rpc.WithServerInterceptor(auth))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The client adds the token to every call with a client interceptor.
	withToken := func(ctx context.Context, call *rpc.CallInfo, next rpc.Handler) error {
		return next(rpc.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret"), call)
	}
	good, err := rpc.Dial(ctx, "tcp", addr, rpc.WithClientInterceptor(withToken))
	if err != nil {
		log.Fatal(err)
	}
	defer good.Close()
	bad, err := rpc.Dial(ctx, "tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer bad.Close()

	var reply string
	fmt.Println(good.Call(ctx, "Greeter.Hello", "ada", &reply))
	err = bad.Call(ctx, "Greeter.Hello", "eve", &reply)
	fmt.Println(errors.Is(err, rpc.ErrRejected), errors.Is(err, rpc.ErrNotExecuted))
	// Output:
	// <nil>
	// true true
}

// An attempt interceptor sees every try of a call, with its failure class
// and the backoff before it, where a client interceptor sees the call once.
func ExampleWithAttemptInterceptor() {
	addr, stop := serveGreeter()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The first attempt of each call is refused before it leaves, as a
	// lost connection would be; the policy retries it.
	refuseFirst := func(ctx context.Context, a *rpc.AttemptInfo, next rpc.AttemptHandler) error {
		if a.Attempt == 1 {
			return semantics.NotSent(errors.New("simulated refusal"))
		}
		return next(ctx, a)
	}
	logAttempt := func(ctx context.Context, a *rpc.AttemptInfo, next rpc.AttemptHandler) error {
		err := next(ctx, a)
		fmt.Printf("%s attempt %d: %v, waited first: %v\n", a.ServiceMethod, a.Attempt, semantics.ClassOf(err), a.Backoff > 0)
		return err
	}
	client, err := rpc.Dial(ctx, "tcp", addr,
		rpc.WithSemantics(semantics.AtLeastOnce()),
		rpc.WithAttemptInterceptor(logAttempt),
		rpc.WithAttemptInterceptor(refuseFirst))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var reply string
	fmt.Println(client.Call(ctx, "Greeter.Hello", "ada", &reply))
	// Output:
	// Greeter.Hello attempt 1: not sent, waited first: false
	// Greeter.Hello attempt 2: ok, waited first: true
	// <nil>
}

// Refuse explains a refusal in its trailer, which reaches the caller with
// the error.
func (Greeter) Refuse(ctx context.Context, name string, reply *string) error {
	rpc.SetTrailer(ctx, rpc.Pairs("retry-after", "30s"))
	return fmt.Errorf("%s: come back later", name)
}

// A trailer travels with an error answer too.
func ExampleWithTrailer() {
	addr, stop := serveGreeter()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := rpc.Dial(ctx, "tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var reply string
	var trailer rpc.Metadata
	err = client.Call(ctx, "Greeter.Refuse", "ada", &reply, rpc.WithTrailer(&trailer))
	fmt.Println(err)
	fmt.Println("retry after:", trailer.First("retry-after"))
	// Output:
	// ada: come back later
	// retry after: 30s
}

// Calling a method directly, as a test would, with the peer a server
// would give it.
func ExampleNewPeerContext() {
	addr, _ := net.ResolveTCPAddr("tcp", "192.0.2.7:4242")
	ctx := rpc.NewPeerContext(context.Background(), &rpc.Peer{Addr: addr})
	var who string
	Greeter{}.WhoAmI(ctx, 0, &who)
	fmt.Println(who)
	// Output: tcp 192.0.2.7, TLS false
}
