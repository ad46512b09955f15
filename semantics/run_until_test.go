package semantics

import (
	"context"
	"errors"
	"testing"
	"time"
)

// RunUntil starts no retry after its deadline, and says so with an error
// that wraps context.DeadlineExceeded; a call that succeeds first time is
// untouched by it.
func TestRunUntilStopsRetryingAtTheDeadline(t *testing.T) {
	var r Runner
	tries := 0
	start := time.Now()
	err := r.RunUntil(context.Background(), start.Add(50*time.Millisecond), AtLeastOnce(MaxAttempts(0)), func(context.Context) error {
		tries++
		return NotSent(errors.New("refused"))
	})
	if !errors.Is(err, ErrRetryDeadline) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %v, want the 50ms deadline", d)
	}
	if tries < 2 {
		t.Errorf("%d attempts before the deadline", tries)
	}
	if err := r.RunUntil(context.Background(), time.Now().Add(-time.Second), AtMostOnce(), func(context.Context) error { return nil }); err != nil {
		t.Errorf("a first attempt that succeeds: %v", err)
	}
}
