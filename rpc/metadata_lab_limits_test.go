package rpc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Over labrpc, Handle applies the same limits: 350,000 keys without values
// are refused, the method not run.
func TestLabrpcServerRefusesMetadataOfKeysWithoutValues(t *testing.T) {
	net := labrpc.MakeNetworkSeed(1)
	defer net.Cleanup()
	srv := labrpc.MakeServer()
	svc := &Tenant{seen: make(chan string, 4)}
	srv.AddService(labrpc.MakeService(svc))
	net.AddServer("s", srv)
	end := net.MakeEnd("c1")
	net.Connect("c1", "s")
	net.Enable("c1", true)

	many := make(rpc.Metadata, 350_000)
	for i := range 350_000 {
		many[fmt.Sprintf("k%d", i)] = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r TenantSeen
	err := end.RoundTrip(ctx, &rpc.Request{ServiceMethod: "Tenant.Who", Args: 0, Metadata: many}, &r)
	if semantics.ClassOf(err) != semantics.ClassRejected || !strings.Contains(err.Error(), "metadata too large: 350000 entries") {
		t.Fatalf("err = %v (class %v), want a refusal saying metadata too large", err, semantics.ClassOf(err))
	}
	select {
	case got := <-svc.seen:
		t.Fatalf("the method ran (tenant %q)", got)
	default:
	}
}
