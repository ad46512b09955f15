package quotesvc_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/semrpc/semrpc/examples/quote/quotesvc"
	"github.com/semrpc/semrpc/rpc"
)

// Two servers over mutual TLS, one client spreading its calls over them,
// a bearer token and the caller's certificate checked on the server.
func Example() {
	dir, err := os.MkdirTemp("", "quote-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := quotesvc.Certs(dir, "example client", time.Hour); err != nil {
		log.Fatal(err)
	}
	serverTLS, err := quotesvc.ServerTLS(dir)
	if err != nil {
		log.Fatal(err)
	}
	var addrs []string
	for _, name := range []string{"s1", "s2"} {
		srv, err := quotesvc.NewServer(name, map[string]string{"t-acme": "acme"})
		if err != nil {
			log.Fatal(err)
		}
		l, err := rpc.ListenTLS("tcp", "127.0.0.1:0", serverTLS)
		if err != nil {
			log.Fatal(err)
		}
		go srv.Serve(l)
		defer srv.Shutdown(context.Background())
		addrs = append(addrs, l.Addr().String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	clientTLS, err := quotesvc.ClientTLS(dir, false)
	if err != nil {
		log.Fatal(err)
	}
	c, err := quotesvc.Dial(ctx, addrs, clientTLS, "t-acme")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	servers := map[string]bool{}
	for range 4 {
		q, servedBy, err := quotesvc.Price(ctx, c, "wine", 1)
		if err != nil {
			log.Fatal(err)
		}
		servers[servedBy] = true
		fmt.Printf("%d cents for %s (%d%% off), caller %q\n", q.Total, q.Tenant, q.Discount, q.Caller)
	}
	fmt.Println("servers used:", len(servers))
	// Output:
	// 1620 cents for acme (10% off), caller "example client"
	// 1620 cents for acme (10% off), caller "example client"
	// 1620 cents for acme (10% off), caller "example client"
	// 1620 cents for acme (10% off), caller "example client"
	// servers used: 2
}
