package rpc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flightOwner is the smallest owner of a flight: a lock and the flight it
// guards.
type flightOwner struct {
	mu     sync.Mutex // protects following
	f      flight[int]
	joined int // callers that joined a run in progress

	ran atomic.Int64 // runs started
}

// do joins the flight in progress or leads a new one, which runs op.
func (o *flightOwner) do(ctx context.Context, op func() (int, error)) (int, error) {
	o.mu.Lock()
	run, lead := o.f.join()
	if !lead {
		o.joined++
	}
	o.mu.Unlock()
	if lead {
		o.ran.Add(1)
		v, err := op()
		o.mu.Lock()
		o.f.land(run, v, err)
		o.mu.Unlock()
	}
	if !run.wait(ctx) {
		return 0, ctx.Err()
	}
	return run.result()
}

func TestFlightOneRunForManyCallers(t *testing.T) {
	var o flightOwner
	release := make(chan struct{})
	started := make(chan struct{})
	op := func() (int, error) {
		close(started)
		<-release
		return 42, nil
	}
	const callers = 16
	results := make(chan int, callers)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the leader
		defer wg.Done()
		v, _ := o.do(context.Background(), op)
		results <- v
	}()
	<-started
	for range callers - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _ := o.do(context.Background(), func() (int, error) {
				t.Error("a second run started while one was in flight")
				return 0, nil
			})
			results <- v
		}()
	}
	for { // land only once every other caller has joined
		o.mu.Lock()
		joined := o.joined
		o.mu.Unlock()
		if joined == callers-1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 42 {
			t.Fatalf("a caller got %d, want the run's 42", v)
		}
	}
	if n := o.ran.Load(); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
}

func TestFlightWaiterGivesUpUnderItsOwnContext(t *testing.T) {
	var o flightOwner
	release := make(chan struct{})
	started := make(chan struct{})
	leader := make(chan error, 1)
	go func() {
		_, err := o.do(context.Background(), func() (int, error) {
			close(started)
			<-release
			return 0, errors.New("handshake failed")
		})
		leader <- err
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.do(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter with an ended context: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-leader; err == nil || err.Error() != "handshake failed" {
		t.Fatalf("leader: %v, want its run's error", err)
	}
}

func TestFlightLandedRunIsNotJoinedAgain(t *testing.T) {
	var o flightOwner
	for i := range 3 {
		v, err := o.do(context.Background(), func() (int, error) { return i, nil })
		if err != nil || v != i {
			t.Fatalf("run %d: %d, %v", i, v, err)
		}
	}
	if n := o.ran.Load(); n != 3 {
		t.Fatalf("%d runs for 3 calls one after another, want 3", n)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f.running() != nil {
		t.Fatal("a landed run is still in flight")
	}
}

func TestFlightWaitPrefersALandedResult(t *testing.T) {
	var f flight[string]
	run, lead := f.join()
	if !lead {
		t.Fatal("the first join did not lead")
	}
	if again, lead := f.join(); lead || again != run {
		t.Fatal("a second join did not join the run in progress")
	}
	f.land(run, "ok", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !run.wait(ctx) {
		t.Fatal("wait on a landed run with an ended context reported false")
	}
	if v, err := run.result(); v != "ok" || err != nil {
		t.Fatalf("result %q, %v", v, err)
	}
	select {
	case <-run.done():
	default:
		t.Fatal("done not closed after land")
	}
}
