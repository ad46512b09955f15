package tests

import (
	"testing"
	"time"

	"github.com/semrpc/semrpc/semantics"
	"github.com/semrpc/semrpc/tests/bench"
)

// With default options, at-least-once completes every call on a link that
// kills the connection under 10% or 20% of requests, with one caller or
// 64 sharing a client (doc/semantics.md §3, retry budget).
func TestAtLeastOnceCompletesOnLossyLinks(t *testing.T) {
	for _, loss := range []float64{0.1, 0.2} {
		for _, callers := range []int{1, 64} {
			sd := seed(t)
			r, err := bench.Loss(loss, callers, 400*soak(), 0, 20*time.Second, sd)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("loss %.0f%%, %d callers: %d/%d completed, %d attempts, %d connections, %d runs",
				loss*100, callers, r.Completed, r.Calls, r.Attempts, r.Conns, r.Runs)
			if r.Completed != r.Calls {
				t.Errorf("loss %.0f%%, %d callers: %d of %d calls failed (%d ended by the budget)",
					loss*100, callers, r.Calls-r.Completed, r.Calls, r.Budget)
			}
		}
	}
}

// Against a server whose every connection dies, the retry budget keeps the
// connection attempts within 1.2× the calls plus the reserve
// (10 retries/s over the 10 s window).
func TestRetryBudgetBoundsConnectionsToADeadServer(t *testing.T) {
	const calls = 1000
	// Each call waits for the paced redials until its deadline (a server
	// whose every connection dies is dialled as one that refuses is), so
	// the deadline is short: the calls end by it or by the budget.
	r, err := bench.Loss(1, 64, calls, 0, 500*time.Millisecond, seed(t))
	if err != nil {
		t.Fatal(err)
	}
	reserve := semantics.DefaultBudgetMinRetriesPerSec * semantics.DefaultBudgetTTL.Seconds()
	bound := int64((1+semantics.DefaultBudgetPercent)*calls + reserve*(1+r.Elapsed.Seconds()/semantics.DefaultBudgetTTL.Seconds()))
	t.Logf("%d calls, %d completed, %d attempts, %d connections (bound %d), %d ended by the budget, in %v",
		r.Calls, r.Completed, r.Attempts, r.Conns, bound, r.Budget, r.Elapsed)
	if r.Completed != 0 || r.Runs != 0 {
		t.Fatalf("a dead server ran calls: %+v", r)
	}
	if r.Conns > bound {
		t.Errorf("%d connection attempts for %d calls; the budget allows %d", r.Conns, calls, bound)
	}
}
