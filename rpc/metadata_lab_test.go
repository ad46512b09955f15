package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
)

// Tenant answers with the tenant its caller named in metadata.
type Tenant struct {
	seen chan string // every execution's tenant
}

type TenantSeen struct {
	Tenant   string
	Peer     string
	Deadline bool
}

func (s *Tenant) Who(ctx context.Context, _ int, r *TenantSeen) error {
	md, _ := rpc.FromIncomingContext(ctx)
	r.Tenant = md.First("tenant")
	if p, ok := rpc.PeerFromContext(ctx); ok {
		r.Peer = p.Addr.Network() + ":" + p.Addr.String()
	}
	_, r.Deadline = ctx.Deadline()
	s.seen <- r.Tenant
	if err := rpc.SetHeader(ctx, rpc.Pairs("served-for", r.Tenant)); err != nil {
		return err
	}
	return nil
}

// Over labrpc (rpc.Request → Server.Handle), metadata, peer, deadline and
// reply metadata travel as over TCP, duplicates included.
func TestMetadataOverLabrpc(t *testing.T) {
	for _, p := range []semantics.Policy{semantics.NoRetry(), semantics.AtMostOnce()} {
		t.Run(p.Kind().String(), func(t *testing.T) {
			net := labrpc.MakeNetworkSeed(1)
			defer net.Cleanup()
			srv := labrpc.MakeServer()
			svc := &Tenant{seen: make(chan string, 4)}
			srv.AddService(labrpc.MakeService(svc))
			net.AddServer("s", srv)
			end := net.MakeEnd("c1")
			net.Connect("c1", "s")
			net.Enable("c1", true)
			if err := net.SetLink("c1", labrpc.LinkConfig{Duplicate: 1}); err != nil {
				t.Fatal(err)
			}
			c := rpc.NewClient(end, rpc.WithSemantics(p))
			defer c.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = rpc.AppendToOutgoingContext(ctx, "tenant", "acme")
			var r TenantSeen
			var header rpc.Metadata
			if err := c.Call(ctx, "Tenant.Who", 0, &r, rpc.WithHeader(&header)); err != nil {
				t.Fatal(err)
			}
			if r.Tenant != "acme" || r.Peer != "labrpc:c1" || !r.Deadline || header.First("served-for") != "acme" {
				t.Fatalf("method saw %+v, header %v; want tenant acme, peer labrpc:c1, a deadline, header served-for=acme", r, header)
			}
			// Every delivery carries the metadata: the original, and under
			// NoRetry its duplicate, which runs too.
			runs := 1
			if p.Kind() == semantics.KindNoRetry {
				runs = 2
			}
			for i := range runs {
				select {
				case got := <-svc.seen:
					if got != "acme" {
						t.Fatalf("delivery %d saw tenant %q", i, got)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("delivery %d never ran", i)
				}
			}
			// Over the limits: refused before sending.
			big := rpc.AppendToOutgoingContext(ctx, "big", string(make([]byte, rpc.MaxMetadataBytes)))
			if err := c.Call(big, "Tenant.Who", 0, &r); !errors.Is(err, rpc.ErrMetadataTooLarge) {
				t.Fatalf("oversized metadata: %v", err)
			}
		})
	}
}
