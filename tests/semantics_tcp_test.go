package tests

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/semrpc/semrpc/rpc"
	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/tests/faultproxy"
)

// Issue 3's acceptance test: through a TCP path that kills connections
// before requests and before replies, at-most-once runs no call twice and
// completes every call within its deadline, and at-least-once completes
// every call.
func TestSemanticsThroughKillingProxy(t *testing.T) {
	tests := []struct {
		name   string
		policy semantics.Policy
		once   bool // each call must run exactly once
	}{
		{"at-most-once", semantics.AtMostOnce(semantics.Backoff(time.Millisecond, 20*time.Millisecond)), true},
		{"at-most-once-window-1", semantics.AtMostOnce(semantics.Window(1), semantics.Backoff(time.Millisecond, 20*time.Millisecond)), true},
		{"at-least-once", semantics.AtLeastOnce(semantics.MaxAttempts(50), semantics.Backoff(time.Millisecond, 20*time.Millisecond)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := seed(t)
			counter := NewCounter()
			srv := rpc.NewServer(rpc.WithLogger(quiet()))
			if err := srv.Register(counter); err != nil {
				t.Fatal(err)
			}
			addr := serveTCP(t, srv)
			fault := faultproxy.Faults{Drop: 0.08}
			proxy, err := faultproxy.New(addr, faultproxy.Config{Seed: sd, Upstream: fault, Downstream: fault})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()

			// The retry budget protects dead servers; this one is merely
			// unlucky, so the test turns it off to demand completion.
			client, err := rpc.Dial(context.Background(), "tcp", proxy.Addr(),
				rpc.WithSemantics(tt.policy), rpc.WithRetryBudget(nil),
				rpc.WithRedialBackoff(time.Millisecond, 5*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()

			const workers = 8
			calls := 150 * soak()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < calls; i++ {
						id := next.Add(1)
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						var reply IncrReply
						err := client.Call(ctx, "Counter.Incr", IncrArgs{ID: id}, &reply)
						cancel()
						if err != nil {
							errs <- err
							return
						}
						if tt.once && reply.Runs != 1 {
							t.Errorf("call %d: reply says it ran %d times", id, reply.Runs)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("a call did not complete: %v", err)
			}
			total := next.Load()
			twice := 0
			for id := int64(1); id <= total; id++ {
				switch n := counter.Runs(id); {
				case n == 0:
					t.Errorf("call %d completed but never ran", id)
				case n > 1 && tt.once:
					t.Errorf("call %d ran %d times under %s", id, n, tt.policy.Kind())
				case n > 1:
					twice++
				}
			}
			ps := proxy.Stats()
			cs := client.Stats()
			ts := srv.Stats().Table
			t.Logf("%d calls; proxy killed %d connections; %d attempts, %d retries; table: %d duplicates answered, %d in-flight waits; %d calls ran more than once",
				total, ps.Killed, cs.Run.Attempts, cs.Run.Retries, ts.Duplicates, ts.InFlightWaits, twice)
			if ps.Killed == 0 {
				t.Fatal("the proxy killed no connection: the test exercised nothing")
			}
			if tt.once && ts.Duplicates+ts.InFlightWaits == 0 {
				t.Error("no duplicate reached the table although replies were lost")
			}
		})
	}
}
