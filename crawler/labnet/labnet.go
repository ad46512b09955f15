// Package labnet connects a distributed crawl's workers to its coordinator
// through labrpc's simulated network, which can lose, delay and duplicate
// calls, so that a crawl can be tried, or tested, under faults that loopback
// TCP never has. Pass a *Network as crawler.DistributedConfig.Network:
//
//	res, err := crawler.DistributedCrawl(ctx, crawler.DistributedConfig{
//		StartURL: start, Fetcher: polite, Workers: 8,
//		Network:  &labnet.Network{Loss: 0.03, Duplicate: 0.01, Seed: 1},
//	})
//
// It lives apart from package crawler so that the crawler's own code and
// configuration know nothing of the simulator.
package labnet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/semrpc/semrpc/labrpc"
	"github.com/semrpc/semrpc/rpc"
)

// Network is a simulated network between workers and a coordinator: every
// worker has its own link to the coordinator, with the same faults. The
// zero Network loses, delays and duplicates nothing.
type Network struct {
	// Loss is the probability that a request is lost, and separately that
	// a reply is lost (after the call ran). 0 <= Loss < 1.
	Loss float64
	// Duplicate is the probability that a request is delivered twice.
	// 0 <= Duplicate <= 1.
	Duplicate float64
	// MaxDelay bounds the random delay of each request; zero means none.
	MaxDelay time.Duration
	// Seed seeds the faults: the same seed and the same calls give the
	// same faults.
	Seed int64
}

// Validate reports whether n's probabilities and delay are in range.
func (n *Network) Validate() error {
	switch {
	case n.Loss < 0 || n.Loss >= 1 || n.Loss != n.Loss:
		return fmt.Errorf("labnet: Loss %g: want 0 <= loss < 1", n.Loss)
	case n.Duplicate < 0 || n.Duplicate > 1 || n.Duplicate != n.Duplicate:
		return fmt.Errorf("labnet: Duplicate %g: want 0 <= duplicate <= 1", n.Duplicate)
	case n.MaxDelay < 0:
		return fmt.Errorf("labnet: MaxDelay %v is negative", n.MaxDelay)
	}
	return nil
}

// Connect serves server on a new simulated network and returns count
// clients of it, one per worker, each on its own faulty link and using
// opts. stop closes the clients and the network; it does not close server.
func (n *Network) Connect(ctx context.Context, server *rpc.Server, count int, opts ...rpc.Option) (clients []*rpc.Client, stop func(), err error) {
	if err := n.Validate(); err != nil {
		return nil, nil, err
	}
	if count < 0 {
		return nil, nil, errors.New("labnet: negative client count")
	}
	network := labrpc.MakeNetworkSeed(n.Seed)
	network.AddServer("coordinator", labrpc.MakeServerWith(server))
	stop = func() {
		for _, c := range clients {
			c.Close()
		}
		network.Cleanup()
	}
	link := labrpc.LinkConfig{DropRequest: n.Loss, DropReply: n.Loss, Duplicate: n.Duplicate, MaxDelay: n.MaxDelay}
	for i := range count {
		name := fmt.Sprintf("worker-%d", i)
		end := network.MakeEnd(name)
		network.Connect(name, "coordinator")
		network.Enable(name, true)
		if err := network.SetLink(name, link); err != nil {
			stop()
			return nil, nil, fmt.Errorf("labnet: %w", err)
		}
		clients = append(clients, rpc.NewClient(end, opts...))
	}
	return clients, stop, nil
}

// String describes the network's faults, as a summary would.
func (n *Network) String() string {
	return fmt.Sprintf("labrpc (%.1f%% loss each way, %.1f%% duplication, delays up to %v)",
		100*n.Loss, 100*n.Duplicate, n.MaxDelay)
}
