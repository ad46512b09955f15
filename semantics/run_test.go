package semantics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

var (
	errDial    = errors.New("dial refused")
	errTimeout = errors.New("timeout")
	errNoKey   = errors.New("no such key")
)

// fakeTimer is an injectable Runner.After that never sleeps: it records
// each requested wait and fires at once.
type fakeTimer struct {
	mu    sync.Mutex // protects waits
	waits []time.Duration
}

func (f *fakeTimer) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	f.waits = append(f.waits, d)
	f.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

func (f *fakeTimer) Waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}

// script is an attempt function that returns its errors in order, and
// success (nil) once they run out.
type script struct {
	errs  []error
	calls int
}

func (s *script) attempt(context.Context) error {
	s.calls++
	if s.calls <= len(s.errs) {
		return s.errs[s.calls-1]
	}
	return nil
}

func notSent() error { return NotSent(errDial) }
func maybe() error   { return MaybeExecuted(errTimeout) }
func appErr() error  { return fmt.Errorf("KV.Get: %w: %w", ErrApplication, errNoKey) }
func stale() error   { return fmt.Errorf("client x seq 3: %w", ErrStale) }

func repeat(n int, mk func() error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = mk()
	}
	return errs
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		errs     []error
		attempts int   // attempts expected
		want     error // nil, an error compared with ==, or the verdict of a *GiveUpError
	}{
		{"NoRetry/success", NoRetry(), nil, 1, nil},
		{"NoRetry/not sent", NoRetry(), []error{notSent()}, 1, ErrNotExecuted},
		{"NoRetry/maybe executed", NoRetry(), []error{maybe()}, 1, ErrMaybeExecuted},
		{"NoRetry/rejected", NoRetry(), []error{stale()}, 1, ErrNotExecuted},
		{"nil policy is NoRetry", nil, []error{notSent(), nil}, 1, ErrNotExecuted},
		{"AtLeastOnce/success", AtLeastOnce(), nil, 1, nil},
		{"AtLeastOnce/retries not sent and maybe", AtLeastOnce(), []error{notSent(), maybe(), notSent()}, 4, nil},
		{"AtLeastOnce/unclassified is retried", AtLeastOnce(), []error{errTimeout}, 2, nil},
		{"AtLeastOnce/stops on rejected", AtLeastOnce(), []error{notSent(), stale(), notSent()}, 2, ErrNotExecuted},
		{"AtLeastOnce/rejected after maybe", AtLeastOnce(), []error{maybe(), stale()}, 2, ErrMaybeExecuted},
		{"AtLeastOnce/default 5 attempts", AtLeastOnce(), repeat(10, notSent), 5, ErrNotExecuted},
		{"AtLeastOnce/MaxAttempts(2)", AtLeastOnce(MaxAttempts(2)), repeat(10, maybe), 2, ErrMaybeExecuted},
		{"AtLeastOnce/MaxAttempts(1)", AtLeastOnce(MaxAttempts(1)), repeat(10, maybe), 1, ErrMaybeExecuted},
		{"AtLeastOnce/MaxAttempts(0) unbounded", AtLeastOnce(MaxAttempts(0)), repeat(20, notSent), 21, nil},
		{"AtLeastOnce/maybe anywhere makes maybe", AtLeastOnce(MaxAttempts(3)), []error{notSent(), maybe(), notSent()}, 3, ErrMaybeExecuted},
		{"AtMostOnce/retries", AtMostOnce(), append(repeat(30, maybe), notSent()), 32, nil},
		{"AtMostOnce/MaxAttempts(3)", AtMostOnce(MaxAttempts(3)), repeat(10, notSent), 3, ErrNotExecuted},
		{"AtMostOnce/stops on rejected", AtMostOnce(), []error{maybe(), fmt.Errorf("x: %w", ErrEpochMismatch)}, 2, ErrMaybeExecuted},
		{"ExactlyOnce/retries", ExactlyOnce(), []error{maybe(), maybe()}, 3, nil},
		{"ExactlyOnce/not durable", ExactlyOnce(), []error{fmt.Errorf("x: %w", ErrNotDurable)}, 1, ErrNotExecuted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTimer{}
			r := &Runner{After: ft.After}
			s := &script{errs: tt.errs}
			err := r.Run(context.Background(), tt.policy, s.attempt)
			if s.calls != tt.attempts {
				t.Errorf("attempts = %d, want %d", s.calls, tt.attempts)
			}
			if got := len(ft.Waits()); got != tt.attempts-1 {
				t.Errorf("waits = %d, want %d (one before each retry)", got, tt.attempts-1)
			}
			if st := r.Stats(); st.Attempts != uint64(tt.attempts) || st.Retries != uint64(tt.attempts-1) {
				t.Errorf("Stats() = %+v, want %d attempts and %d retries", st, tt.attempts, tt.attempts-1)
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				return
			}
			var gu *GiveUpError
			if !errors.As(err, &gu) {
				t.Fatalf("Run() = %v (%T), want a *GiveUpError", err, err)
			}
			if gu.Verdict != tt.want {
				t.Errorf("Verdict = %v, want %v", gu.Verdict, tt.want)
			}
			if gu.Tried != tt.attempts {
				t.Errorf("Tried = %d, want %d", gu.Tried, tt.attempts)
			}
			wantKind := KindNoRetry
			if tt.policy != nil {
				wantKind = tt.policy.Kind()
			}
			if gu.Policy != wantKind {
				t.Errorf("Policy = %v, want %v", gu.Policy, wantKind)
			}
			// The attempt list is exactly the attempts' errors, in order.
			got := gu.Attempts.WrappedErrors()
			if len(got) != tt.attempts {
				t.Fatalf("len(Attempts) = %d, want %d: %v", len(got), tt.attempts, got)
			}
			for i := range got {
				if got[i] != tt.errs[i] {
					t.Errorf("Attempts[%d] = %v, want %v", i, got[i], tt.errs[i])
				}
			}
		})
	}
}

func TestRunApplicationErrorIsTheAnswer(t *testing.T) {
	for _, p := range []Policy{NoRetry(), AtLeastOnce(), AtMostOnce(), ExactlyOnce()} {
		t.Run(p.Kind().String(), func(t *testing.T) {
			want := appErr()
			s := &script{errs: []error{notSent(), want, notSent()}}
			if p.Kind() == KindNoRetry {
				s.errs = s.errs[1:]
			}
			r := &Runner{After: (&fakeTimer{}).After}
			err := r.Run(context.Background(), p, s.attempt)
			if err != want {
				t.Fatalf("Run() = %v, want the application error itself", err)
			}
			if !errors.Is(err, errNoKey) {
				t.Errorf("errors.Is(err, errNoKey) = false")
			}
		})
	}
}

// A success must be a nil interface, not a nil pointer in a non-nil one.
func TestRunSuccessIsTrueNil(t *testing.T) {
	for _, p := range []Policy{NoRetry(), AtLeastOnce(), AtMostOnce(), ExactlyOnce()} {
		s := &script{errs: []error{notSent(), maybe()}}
		if p.Kind() == KindNoRetry {
			s.errs = nil
		}
		r := &Runner{After: (&fakeTimer{}).After, Budget: NewBudget(10, 0.1)}
		if err := r.Run(context.Background(), p, s.attempt); err != nil {
			t.Errorf("%v: Run() = %#v, want nil", p.Kind(), err)
		}
	}
}

func TestRunBackoff(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		means  []time.Duration // mean of each wait; each may be ±50%
	}{
		{"defaults", AtLeastOnce(MaxAttempts(9)), []time.Duration{
			10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond,
			160 * time.Millisecond, 320 * time.Millisecond, 640 * time.Millisecond, time.Second,
		}},
		{"Backoff(1ms,4ms)", AtMostOnce(MaxAttempts(6), Backoff(time.Millisecond, 4*time.Millisecond)), []time.Duration{
			time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond,
		}},
		{"Backoff max below initial", AtLeastOnce(MaxAttempts(3), Backoff(time.Second, time.Millisecond)), []time.Duration{
			time.Second, time.Second,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTimer{}
			r := &Runner{After: ft.After}
			// Two calls in a row: each has its own backoff, starting afresh.
			for call := 0; call < 2; call++ {
				s := &script{errs: repeat(100, notSent)}
				if err := r.Run(context.Background(), tt.policy, s.attempt); err == nil {
					t.Fatal("Run() = nil, want an error")
				}
			}
			waits := ft.Waits()
			if len(waits) != 2*len(tt.means) {
				t.Fatalf("got %d waits, want %d", len(waits), 2*len(tt.means))
			}
			for i, d := range waits {
				mean := tt.means[i%len(tt.means)]
				if d < mean/2 || d > mean*3/2 {
					t.Errorf("wait %d = %v, want within ±50%% of %v", i, d, mean)
				}
			}
		})
	}
}

func TestRunContext(t *testing.T) {
	t.Run("ended before the call: no attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := &script{}
		err := (&Runner{}).Run(ctx, AtLeastOnce(), s.attempt)
		if s.calls != 0 {
			t.Errorf("attempts = %d, want 0", s.calls)
		}
		var gu *GiveUpError
		if !errors.As(err, &gu) || gu.Tried != 0 || gu.Verdict != ErrNotExecuted {
			t.Fatalf("Run() = %#v, want a not-executed *GiveUpError with no attempts", err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(err, context.Canceled) = false: %v", err)
		}
	})

	t.Run("ended during an attempt: no retry, ctx error last", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		calls := 0
		attempt := func(context.Context) error {
			calls++
			cancel()
			return maybe()
		}
		ft := &fakeTimer{}
		err := (&Runner{After: ft.After}).Run(ctx, AtMostOnce(), attempt)
		if calls != 1 {
			t.Errorf("attempts = %d, want 1", calls)
		}
		if n := len(ft.Waits()); n != 0 {
			t.Errorf("%d waits started after the context ended, want 0", n)
		}
		var gu *GiveUpError
		if !errors.As(err, &gu) {
			t.Fatalf("Run() = %v, want a *GiveUpError", err)
		}
		list := gu.Attempts.WrappedErrors()
		if len(list) != 2 || list[1] != context.Canceled {
			t.Errorf("Attempts = %v, want [attempt error, context.Canceled]", list)
		}
		if gu.Verdict != ErrMaybeExecuted {
			t.Errorf("Verdict = %v, want ErrMaybeExecuted", gu.Verdict)
		}
	})

	// The timer and ctx.Done are both ready when the wait ends; whichever
	// the select picks, no attempt may start.
	t.Run("ended during the wait, timer fired too: no attempt", func(t *testing.T) {
		for i := 0; i < 100; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			after := func(time.Duration) <-chan time.Time {
				cancel()
				ch := make(chan time.Time, 1)
				ch <- time.Time{}
				return ch
			}
			s := &script{errs: repeat(10, notSent)}
			err := (&Runner{After: after}).Run(ctx, AtLeastOnce(), s.attempt)
			cancel()
			if s.calls != 1 {
				t.Fatalf("attempts = %d, want 1", s.calls)
			}
			if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNotExecuted) {
				t.Fatalf("Run() = %v, want not executed and context.Canceled", err)
			}
		}
	})

	t.Run("ended during a real wait: prompt return", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &script{errs: repeat(10, maybe)}
		done := make(chan error, 1)
		go func() {
			// An hour-long backoff: only ctx can end this wait.
			done <- (&Runner{}).Run(ctx, AtLeastOnce(Backoff(time.Hour, time.Hour)), s.attempt)
		}()
		time.Sleep(10 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if s.calls != 1 {
				t.Errorf("attempts = %d, want 1", s.calls)
			}
			var gu *GiveUpError
			if !errors.As(err, &gu) {
				t.Fatalf("Run() = %v, want a *GiveUpError", err)
			}
			list := gu.Attempts.WrappedErrors()
			if len(list) != 2 || list[1] != context.Canceled {
				t.Errorf("Attempts = %v, want [attempt error, context.Canceled]", list)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("deadlock: Run did not return after its context was canceled")
		}
	})

	t.Run("AtMostOnce retries until the deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		const n = 200
		waits := 0
		after := func(time.Duration) <-chan time.Time {
			waits++
			ch := make(chan time.Time, 1)
			if waits == n {
				cancel() // the deadline, as far as Run can tell
				return nil
			}
			ch <- time.Time{}
			return ch
		}
		s := &script{errs: repeat(10*n, notSent)}
		err := (&Runner{After: after}).Run(ctx, AtMostOnce(), s.attempt)
		if s.calls != n {
			t.Errorf("attempts = %d, want %d", s.calls, n)
		}
		var gu *GiveUpError
		if !errors.As(err, &gu) || gu.Verdict != ErrNotExecuted || gu.Tried != n {
			t.Fatalf("Run() = %v, want a not-executed *GiveUpError after %d attempts", err, n)
		}
		list := gu.Attempts.WrappedErrors()
		if len(list) != n+1 || list[n] != context.Canceled {
			t.Errorf("last of %d entries = %v, want context.Canceled", len(list), list[len(list)-1])
		}
	})

	t.Run("deadline exceeded during attempt", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		attempt := func(ctx context.Context) error {
			<-ctx.Done()
			return MaybeExecuted(ctx.Err())
		}
		err := (&Runner{}).Run(ctx, AtLeastOnce(), attempt)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrMaybeExecuted) {
			t.Fatalf("Run() = %v, want may-have-executed with DeadlineExceeded", err)
		}
	})
}

func TestRunBudget(t *testing.T) {
	ctx := context.Background()
	b := NewBudget(10, 0.1)
	r := &Runner{After: (&fakeTimer{}).After, Budget: b}
	unbounded := AtLeastOnce(MaxAttempts(0))

	// A full bucket of 10 allows retries while more than 5 tokens are left:
	// failures take it to 9, 8, 7, 6, then 5 refuses the fifth retry.
	s := &script{errs: repeat(100, notSent)}
	err := r.Run(ctx, unbounded, s.attempt)
	if s.calls != 5 {
		t.Errorf("attempts = %d, want 5", s.calls)
	}
	var gu *GiveUpError
	if !errors.As(err, &gu) || !errors.Is(err, ErrBudgetExhausted) || !errors.Is(err, ErrNotExecuted) {
		t.Fatalf("Run() = %v, want a not-executed *GiveUpError with ErrBudgetExhausted", err)
	}
	if list := gu.Attempts.WrappedErrors(); list[len(list)-1] != ErrBudgetExhausted || len(list) != 6 {
		t.Errorf("Attempts = %v, want 5 attempt errors then ErrBudgetExhausted", list)
	}
	if got := r.Stats().BudgetRefusals; got != 1 {
		t.Errorf("BudgetRefusals = %d, want 1", got)
	}

	// Exhausted: the next failing call gets no retry.
	s = &script{errs: repeat(100, maybe)}
	err = r.Run(ctx, unbounded, s.attempt)
	if s.calls != 1 || !errors.Is(err, ErrBudgetExhausted) || !errors.Is(err, ErrMaybeExecuted) {
		t.Errorf("attempts = %d, Run() = %v; want 1 attempt refused by the budget", s.calls, err)
	}
	if got := b.Tokens(); got != 4 {
		t.Errorf("Tokens() = %v, want 4", got)
	}

	// At-most-once retries are not gated by the budget (but still drain it).
	s = &script{errs: repeat(3, notSent)}
	if err := r.Run(ctx, AtMostOnce(), s.attempt); err != nil || s.calls != 4 {
		t.Errorf("AtMostOnce: attempts = %d, Run() = %v; want 4 attempts and success", s.calls, err)
	}
	if got := b.Tokens(); got != 1.1 {
		t.Errorf("Tokens() = %v, want 1.1 (three failures, one success)", got)
	}

	// Successes refill it by 0.1: a retry needs more than 5 tokens left
	// after the failed attempt, so more than 6 before it.
	ok := func(context.Context) error { return nil }
	for b.Tokens() <= 6 {
		if err := r.Run(ctx, NoRetry(), ok); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Tokens(); got != 6.1 {
		t.Errorf("Tokens() = %v, want 6.1", got)
	}
	s = &script{errs: []error{notSent()}}
	if err := r.Run(ctx, unbounded, s.attempt); err != nil || s.calls != 2 {
		t.Errorf("after refill: attempts = %d, Run() = %v; want a retry and success", s.calls, err)
	}
	if got := r.Stats().BudgetRefusals; got != 2 {
		t.Errorf("BudgetRefusals = %d, want 2", got)
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name       string
		max, ratio float64
		ops        string // f = failure, s = success
		want       float64
		allow      bool
	}{
		{"full", 10, 0.1, "", 10, true},
		{"never above max", 10, 0.1, "ssss", 10, true},
		{"one failure", 10, 0.1, "f", 9, true},
		{"half is not enough", 10, 0.1, "fffff", 5, false},
		{"never below zero", 10, 0.1, "fffffffffffffff", 0, false},
		{"refill", 10, 0.1, "ffffffs", 4.1, false},
		{"refill past half", 10, 0.5, "ffffffsss", 5.5, true},
		{"small bucket", 1, 0.1, "f", 0, false},
		{"defaults for zero", 0, 0, "f", 9, true},
		{"defaults for negative", -3, -1, "ffs", 8.1, true},
		{"three decimals", 2.0004, 0.0004, "", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.max, tt.ratio)
			for _, op := range tt.ops {
				if op == 'f' {
					b.Failure()
				} else {
					b.Success()
				}
			}
			if got := b.Tokens(); got != tt.want {
				t.Errorf("Tokens() = %v, want %v", got, tt.want)
			}
			if got := b.AllowRetry(); got != tt.allow {
				t.Errorf("AllowRetry() = %v, want %v", got, tt.allow)
			}
		})
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(1000, 1)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				b.Failure()
			}
		}()
	}
	wg.Wait()
	if got := b.Tokens(); got != 200 {
		t.Errorf("Tokens() = %v, want 200 after 800 concurrent failures", got)
	}
}

func TestGiveUpError(t *testing.T) {
	s := &script{errs: []error{notSent(), maybe(), stale()}}
	err := (&Runner{After: (&fakeTimer{}).After}).Run(context.Background(), AtMostOnce(), s.attempt)

	const want = "semrpc: at-most-once call gave up after 3 attempts (may have executed): " +
		"1) not sent: dial refused; 2) maybe executed: timeout; 3) client x seq 3: semrpc: stale request (already acknowledged)"
	if err == nil || err.Error() != want {
		t.Errorf("Error() =\n%v\nwant\n%s", err, want)
	}
	for _, target := range []error{ErrMaybeExecuted, ErrNotSent, ErrStale, errDial, errTimeout} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(err, %v) = false, want true", target)
		}
	}
	for _, target := range []error{ErrNotExecuted, ErrApplication, errNoKey, context.Canceled, ErrBudgetExhausted} {
		if errors.Is(err, target) {
			t.Errorf("errors.Is(err, %v) = true, want false", target)
		}
	}
	var ae *AttemptError
	if !errors.As(err, &ae) || ae.Err != errDial {
		t.Errorf("errors.As found %v, want the first attempt's error", ae)
	}

	// The two verdicts exclude each other.
	s = &script{errs: []error{notSent(), notSent()}}
	err = (&Runner{After: (&fakeTimer{}).After}).Run(context.Background(), AtLeastOnce(MaxAttempts(2)), s.attempt)
	if !errors.Is(err, ErrNotExecuted) || errors.Is(err, ErrMaybeExecuted) {
		t.Errorf("not-executed call: Is(ErrNotExecuted)=%v Is(ErrMaybeExecuted)=%v, want true false",
			errors.Is(err, ErrNotExecuted), errors.Is(err, ErrMaybeExecuted))
	}
	if got, want := err.Error(), "semrpc: at-least-once call gave up after 2 attempts (not executed): 1) not sent: dial refused; 2) not sent: dial refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	// A hand-made, empty GiveUpError must not unwrap to a typed nil.
	empty := &GiveUpError{Policy: KindNoRetry, Verdict: ErrNotExecuted, Tried: 1}
	if u := empty.Unwrap(); u != nil {
		t.Errorf("Unwrap() = %#v, want nil", u)
	}
	if got, want := empty.Error(), "semrpc: no-retry call gave up after 1 attempt (not executed)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestRunConcurrent(t *testing.T) {
	ft := &fakeTimer{}
	r := &Runner{After: ft.After, Budget: NewBudget(1000, 1)}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				s := &script{errs: []error{notSent(), maybe()}}
				if err := r.Run(context.Background(), AtLeastOnce(), s.attempt); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := r.Stats(); st.Attempts != 8*50*3 || st.Retries != 8*50*2 {
		t.Errorf("Stats() = %+v, want 1200 attempts and 800 retries", st)
	}
	// Every call's backoff started afresh: all first retries wait ~10ms.
	short := 0
	for _, d := range ft.Waits() {
		if d <= 15*time.Millisecond {
			short++
		}
	}
	if short < 8*50 {
		t.Errorf("%d waits of at most 15ms, want at least one per call (400)", short)
	}
}

func TestRunSuccessDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	for _, p := range []Policy{NoRetry(), AtLeastOnce(), AtMostOnce()} {
		r := &Runner{Budget: NewBudget(10, 0.1)}
		if n := testing.AllocsPerRun(100, func() { _ = r.Run(ctx, p, ok) }); n != 0 {
			t.Errorf("%v: %v allocations per successful call, want 0", p.Kind(), n)
		}
	}
}

func TestKindAndOptions(t *testing.T) {
	kinds := map[Kind]string{
		KindNoRetry: "no-retry", KindAtLeastOnce: "at-least-once",
		KindAtMostOnce: "at-most-once", KindExactlyOnce: "exactly-once", Kind(9): "Kind(9)",
	}
	for k, want := range kinds {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
	tests := []struct {
		policy   Policy
		kind     Kind
		window   int
		attempts int
	}{
		{NoRetry(), KindNoRetry, 0, 1},
		{nil, KindNoRetry, 0, 1},
		{AtLeastOnce(), KindAtLeastOnce, 0, 5},
		{AtLeastOnce(Window(8), MaxAttempts(-1)), KindAtLeastOnce, 0, 0},
		{AtMostOnce(), KindAtMostOnce, DefaultWindow, 0},
		{AtMostOnce(Window(8), MaxAttempts(3)), KindAtMostOnce, 8, 3},
		{AtMostOnce(Window(0)), KindAtMostOnce, DefaultWindow, 0},
		{ExactlyOnce(Window(1), nil), KindExactlyOnce, 1, 0},
	}
	for i, tt := range tests {
		if tt.policy != nil && tt.policy.Kind() != tt.kind {
			t.Errorf("%d: Kind() = %v, want %v", i, tt.policy.Kind(), tt.kind)
		}
		if got := WindowOf(tt.policy); got != tt.window {
			t.Errorf("%d: WindowOf() = %d, want %d", i, got, tt.window)
		}
		if got := MaxAttemptsOf(tt.policy); got != tt.attempts {
			t.Errorf("%d: MaxAttemptsOf() = %d, want %d", i, got, tt.attempts)
		}
	}
}

func BenchmarkRun(b *testing.B) {
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	benches := []struct {
		name   string
		policy Policy
		budget *Budget
	}{
		{"NoRetry", NoRetry(), nil},
		{"AtLeastOnce", AtLeastOnce(), nil},
		{"AtLeastOnce+Budget", AtLeastOnce(), NewBudget(10, 0.1)},
		{"AtMostOnce", AtMostOnce(), nil},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			r := &Runner{Budget: bb.budget}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := r.Run(ctx, bb.policy, ok); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
	b.Run("AtLeastOnce/one retry", func(b *testing.B) {
		r := &Runner{After: func(time.Duration) <-chan time.Time { return closedTimeChan }}
		p := AtLeastOnce()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			first := true
			err := r.Run(ctx, p, func(context.Context) error {
				if first {
					first = false
					return errNotSentBench
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

var (
	errNotSentBench = NotSent(errDial)
	closedTimeChan  = func() <-chan time.Time { ch := make(chan time.Time); close(ch); return ch }()
)
