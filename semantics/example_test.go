package semantics_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/semrpc/semrpc/semantics"
)

// instant is a Runner.After that does not wait, so examples run at once.
func instant(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

// An at-least-once call over a link that refuses two dials, then works.
func ExampleRunner_Run() {
	r := &semantics.Runner{Budget: semantics.DefaultBudget(), After: instant}
	attempts := 0
	err := r.Run(context.Background(), semantics.AtLeastOnce(), func(ctx context.Context) error {
		attempts++
		if attempts <= 2 {
			return semantics.NotSent(errors.New("connection refused"))
		}
		return nil // the reply arrived
	})
	st := r.Stats()
	fmt.Println(err, attempts, st.Retries, "retries, free:", st.FreeRetries)
	// Output: <nil> 3 2 retries, free: 2
}

// A call that gives up tells the caller whether the method may have run.
func ExampleGiveUpError() {
	r := &semantics.Runner{After: instant}
	attempts := []error{
		semantics.NotSent(errors.New("connection refused")),
		semantics.MaybeExecuted(errors.New("connection reset")),
	}
	n := 0
	// A not-sent attempt is free: MaxAttempts(1) allows one more.
	err := r.Run(context.Background(), semantics.AtMostOnce(semantics.MaxAttempts(1)), func(ctx context.Context) error {
		n++
		return attempts[n-1]
	})
	fmt.Println(err)
	fmt.Println("may have executed:", errors.Is(err, semantics.ErrMaybeExecuted))
	fmt.Println("definitely not executed:", errors.Is(err, semantics.ErrNotExecuted))
	// Output:
	// semrpc: at-most-once call gave up after 2 attempts (may have executed): 1) not sent: connection refused; 2) maybe executed: connection reset; stopped: reached MaxAttempts(1)
	// may have executed: true
	// definitely not executed: false
}

// A session numbers at-most-once calls; each header acknowledges every call
// before the first one still running.
func ExampleSession() {
	s := semantics.NewSession(7, 64)
	ctx := context.Background()
	a, _ := s.Begin(ctx)
	b, _ := s.Begin(ctx)
	c, _ := s.Begin(ctx)
	fmt.Println("begun:", a.Seq, b.Seq, c.Seq, "ack", c.Ack)

	s.End(b.Seq) // call 2 replied first: call 1 still holds the ack
	fmt.Println("retry of 3 acks", s.Retry(c.Seq).Ack)

	s.End(a.Seq) // now 1 and 2 are both over
	fmt.Println("retry of 3 acks", s.Retry(c.Seq).Ack, "outstanding", s.Outstanding())
	// Output:
	// begun: 1 2 3 ack 1
	// retry of 3 acks 1
	// retry of 3 acks 3 outstanding 1
}

// A retry budget lets retries reach a share of the calls: here 20% of
// them, with a reserve of one retry per 10 s.
func ExampleBudget() {
	b := semantics.NewBudget(0.2, 10*time.Second, 0.1)
	now := time.Unix(0, 0)
	b.SetClock(func() time.Time { return now })

	fmt.Println("reserve:", b.TryRetry(), b.TryRetry())
	for i := 0; i < 10; i++ {
		b.Record(true, semantics.ClassNone) // ten calls started
	}
	fmt.Println("after 10 calls:", b.TryRetry(), b.TryRetry(), b.TryRetry())
	now = now.Add(10 * time.Second) // the window has moved on
	fmt.Println("10 s later:", b.TryRetry(), b.TryRetry())
	// Output:
	// reserve: true false
	// after 10 calls: true true false
	// 10 s later: true false
}

// gRPC's token bucket is the other budget: failures that may have executed
// drain it, answers refill it, retries stop below half.
func ExampleTokenBucket() {
	b := semantics.NewTokenBucket(10, 0.1)
	for i := 0; i < 5; i++ {
		b.Record(false, semantics.ClassMaybeExecuted)
	}
	b.Record(false, semantics.ClassNotSent) // free
	fmt.Println(b.Tokens(), b.TryRetry())
	for i := 0; i < 11; i++ {
		b.Record(true, semantics.ClassNone)
	}
	fmt.Println(b.Tokens(), b.TryRetry())
	// Output:
	// 5 false
	// 6.1 true
}

// A call that fails for a local reason, before any attempt, gets a give-up
// error of its own, labelled with its policy.
func ExampleGiveUp() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cause := semantics.NotSent(fmt.Errorf("rpc: waiting for a window slot: %w", ctx.Err()))
	err := semantics.GiveUp(semantics.KindAtMostOnce, cause)
	fmt.Println(err)
	fmt.Println(errors.Is(err, semantics.ErrNotExecuted), errors.Is(err, context.Canceled))
	// Output:
	// semrpc: at-most-once call failed before it was sent (not executed): rpc: waiting for a window slot: context canceled
	// true true
}

// A permanent error ends the call at once, whatever the policy.
func ExamplePermanent() {
	r := &semantics.Runner{After: instant}
	attempts := 0
	err := r.Run(context.Background(), semantics.AtLeastOnce(), func(ctx context.Context) error {
		attempts++
		return semantics.Permanent(semantics.NotSent(errors.New("x509: certificate signed by unknown authority")))
	})
	fmt.Println(attempts, semantics.IsPermanent(err))
	fmt.Println(err)
	// Output:
	// 1 true
	// semrpc: at-least-once call gave up after 1 attempt (not executed): 1) not sent: x509: certificate signed by unknown authority; stopped: permanent error
}

// The calls failed by one lost connection share a FailureGroup: their
// retries cost the budget one retry.
func ExampleGrouped() {
	b := semantics.NewBudget(0.2, 10*time.Second, 0.1) // one retry in reserve
	r := &semantics.Runner{Budget: b, After: instant}
	lost := &semantics.FailureGroup{} // one per lost connection
	for call := 0; call < 3; call++ {
		first := true
		err := r.Run(context.Background(), semantics.AtLeastOnce(), func(ctx context.Context) error {
			if first {
				first = false
				return semantics.Grouped(semantics.MaybeExecuted(errors.New("connection reset")), lost)
			}
			return nil
		})
		fmt.Println(call, err)
	}
	fmt.Printf("balance %.1f\n", b.Balance()) // 1 + 3×0.2 − 1
	// Output:
	// 0 <nil>
	// 1 <nil>
	// 2 <nil>
	// balance 0.6
}
