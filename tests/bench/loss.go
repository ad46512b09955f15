package bench

import (
	"context"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/tests/faultproxy"
)

// LossResult is what AtLeastOnce calls with default options did on a link
// that kills connections.
type LossResult struct {
	Loss      float64 // probability that a request's chunk kills its connection
	Callers   int
	Calls     int   // calls made
	Completed int   // calls that returned nil
	Runs      int64 // executions on the server
	Attempts  uint64
	Conns     int64  // connections the proxy accepted
	Budget    uint64 // calls ended by the retry budget
	Elapsed   time.Duration
}

// Counted counts its executions.
type Counted struct{ runs atomic.Int64 }

// Add adds.
func (c *Counted) Add(args Args, reply *int) error {
	c.runs.Add(1)
	*reply = args.A + args.B
	return nil
}

// Loss makes AtLeastOnce calls with default options from callers
// goroutines sharing one client, through a proxy that kills the connection
// before forwarding a request with probability loss (the server never sees
// that request; the client cannot know). It makes calls calls, or, if
// calls is 0, calls until d has passed. Each call has a deadline of perCall.
func Loss(loss float64, callers, calls int, d, perCall time.Duration, seed int64) (LossResult, error) {
	srv := rpc.NewServer(rpc.WithLogger(log.New(io.Discard, "", 0)))
	svc := new(Counted)
	if err := srv.RegisterName("Arith", svc); err != nil {
		return LossResult{}, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return LossResult{}, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	defer func() {
		srv.Close()
		<-done
	}()
	proxy, err := faultproxy.New(l.Addr().String(), faultproxy.Config{Seed: seed, Upstream: faultproxy.Faults{Drop: loss}})
	if err != nil {
		return LossResult{}, err
	}
	defer proxy.Close()
	c, err := rpc.Dial(context.Background(), "tcp", proxy.Addr(), rpc.WithSemantics(semantics.AtLeastOnce()))
	if err != nil {
		return LossResult{}, err
	}
	defer c.Close()

	var next, completed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	more := func() bool {
		if calls > 0 {
			return next.Add(1) <= int64(calls)
		}
		if time.Since(start) >= d {
			return false
		}
		next.Add(1)
		return true
	}
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				ctx, cancel := context.WithTimeout(context.Background(), perCall)
				var r int
				if c.Call(ctx, "Arith.Add", Args{A: 1, B: 2}, &r) == nil {
					completed.Add(1)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	made := int(next.Load())
	if calls > 0 {
		made = calls
	}
	st := c.Stats()
	return LossResult{
		Loss:      loss,
		Callers:   callers,
		Calls:     made,
		Completed: int(completed.Load()),
		Runs:      svc.runs.Load(),
		Attempts:  st.Run.Attempts,
		Conns:     proxy.Stats().Accepted,
		Budget:    st.Run.BudgetRefusals,
		Elapsed:   time.Since(start),
	}, nil
}
