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
	r := &semantics.Runner{Budget: semantics.NewBudget(10, 0.1), After: instant}
	attempts := 0
	err := r.Run(context.Background(), semantics.AtLeastOnce(), func(ctx context.Context) error {
		attempts++
		if attempts <= 2 {
			return semantics.NotSent(errors.New("connection refused"))
		}
		return nil // the reply arrived
	})
	fmt.Println(err, attempts, r.Stats())
	// Output: <nil> 3 {3 2 0}
}

// A call that gives up tells the caller whether the method may have run.
func ExampleGiveUpError() {
	r := &semantics.Runner{After: instant}
	attempts := []error{
		semantics.NotSent(errors.New("connection refused")),
		semantics.MaybeExecuted(errors.New("connection reset")),
	}
	n := 0
	err := r.Run(context.Background(), semantics.AtMostOnce(semantics.MaxAttempts(2)), func(ctx context.Context) error {
		n++
		return attempts[n-1]
	})
	fmt.Println(err)
	fmt.Println("may have executed:", errors.Is(err, semantics.ErrMaybeExecuted))
	fmt.Println("definitely not executed:", errors.Is(err, semantics.ErrNotExecuted))
	// Output:
	// semrpc: at-most-once call gave up after 2 attempts (may have executed): 1) not sent: connection refused; 2) maybe executed: connection reset
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

// A retry budget refuses retries once failures have used half of it.
func ExampleBudget() {
	b := semantics.NewBudget(10, 0.1)
	for i := 0; i < 5; i++ {
		b.Failure()
	}
	fmt.Println(b.Tokens(), b.AllowRetry())
	for i := 0; i < 11; i++ {
		b.Success()
	}
	fmt.Println(b.Tokens(), b.AllowRetry())
	// Output:
	// 5 false
	// 6.1 true
}
