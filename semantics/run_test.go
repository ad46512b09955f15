package semantics

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
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

// fakeBudget is a RetryBudget that records what Run asks of it and allows
// the first allow retries.
type fakeBudget struct {
	mu      sync.Mutex // protects the following
	records []string   // "first:class" or "retry:class"
	asked   int        // TryRetry calls
	allow   int        // TryRetry calls that succeed
}

func (f *fakeBudget) Record(first bool, class Class) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind := "retry"
	if first {
		kind = "first"
	}
	f.records = append(f.records, kind+":"+class.String())
}

func (f *fakeBudget) TryRetry() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	return f.asked <= f.allow
}

func (f *fakeBudget) Asked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

func TestRun(t *testing.T) {
	perm := func(mk func() error) func() error { return func() error { return Permanent(mk()) } }
	tests := []struct {
		name     string
		policy   Policy
		errs     []error
		attempts int   // attempts expected
		want     error // nil, or the verdict of a *GiveUpError
		stop     error // the give-up's Stop, compared with ==
	}{
		{"NoRetry/success", NoRetry(), nil, 1, nil, nil},
		{"NoRetry/not sent", NoRetry(), []error{notSent()}, 1, ErrNotExecuted, nil},
		{"NoRetry/maybe executed", NoRetry(), []error{maybe()}, 1, ErrMaybeExecuted, nil},
		{"NoRetry/rejected", NoRetry(), []error{stale()}, 1, ErrNotExecuted, nil},
		{"nil policy is NoRetry", nil, []error{notSent(), nil}, 1, ErrNotExecuted, nil},
		{"AtLeastOnce/success", AtLeastOnce(), nil, 1, nil, nil},
		{"AtLeastOnce/retries not sent and maybe", AtLeastOnce(), []error{notSent(), maybe(), notSent()}, 4, nil, nil},
		{"AtLeastOnce/unclassified is retried", AtLeastOnce(), []error{errTimeout}, 2, nil, nil},
		{"AtLeastOnce/stops on rejected", AtLeastOnce(), []error{notSent(), stale(), notSent()}, 2, ErrNotExecuted, nil},
		{"AtLeastOnce/rejected after maybe", AtLeastOnce(), []error{maybe(), stale()}, 2, ErrMaybeExecuted, nil},
		{"AtLeastOnce/MaxAttempts(5)", AtLeastOnce(MaxAttempts(5)), repeat(10, maybe), 5, ErrMaybeExecuted, attemptLimit(5)},
		{"AtLeastOnce/not-sent attempts are free", AtLeastOnce(), repeat(20, notSent), 21, nil, nil},
		{"AtLeastOnce/MaxAttempts(2) counts sent attempts", AtLeastOnce(MaxAttempts(2)),
			[]error{notSent(), maybe(), notSent(), notSent(), maybe(), maybe()}, 5, ErrMaybeExecuted, attemptLimit(2)},
		{"AtLeastOnce/MaxAttempts(1) retries not sent", AtLeastOnce(MaxAttempts(1)),
			[]error{notSent(), notSent(), maybe(), maybe()}, 3, ErrMaybeExecuted, attemptLimit(1)},
		{"AtLeastOnce/MaxAttempts(0) unbounded", AtLeastOnce(MaxAttempts(0)), repeat(20, maybe), 21, nil, nil},
		{"AtLeastOnce/maybe anywhere makes maybe", AtLeastOnce(MaxAttempts(2)), []error{notSent(), maybe(), notSent(), errTimeout}, 4, ErrMaybeExecuted, attemptLimit(2)},
		{"AtLeastOnce/permanent not sent", AtLeastOnce(), []error{perm(notSent)()}, 1, ErrNotExecuted, errStopPermanent},
		{"AtLeastOnce/permanent after maybe", AtLeastOnce(), []error{maybe(), perm(notSent)()}, 2, ErrMaybeExecuted, errStopPermanent},
		{"NoRetry/permanent", NoRetry(), []error{perm(maybe)()}, 1, ErrMaybeExecuted, errStopPermanent},
		{"AtMostOnce/retries", AtMostOnce(), append(repeat(30, maybe), notSent()), 32, nil, nil},
		{"AtMostOnce/MaxAttempts(3)", AtMostOnce(MaxAttempts(3)), repeat(10, maybe), 3, ErrMaybeExecuted, attemptLimit(3)},
		{"AtMostOnce/stops on rejected", AtMostOnce(), []error{maybe(), fmt.Errorf("x: %w", ErrEpochMismatch)}, 2, ErrMaybeExecuted, nil},
		{"AtMostOnce/permanent", AtMostOnce(), []error{notSent(), perm(notSent)(), notSent()}, 2, ErrNotExecuted, errStopPermanent},
		{"ExactlyOnce/retries", ExactlyOnce(), []error{maybe(), notSent(), maybe()}, 4, nil, nil},
		{"ExactlyOnce/not durable", ExactlyOnce(), []error{fmt.Errorf("x: %w", ErrNotDurable)}, 1, ErrNotExecuted, nil},
		{"ExactlyOnce/permanent", ExactlyOnce(), []error{perm(maybe)()}, 1, ErrMaybeExecuted, errStopPermanent},
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
			free := 0
			for _, e := range tt.errs[:min(len(tt.errs), tt.attempts-1)] {
				if ClassOf(e) == ClassNotSent {
					free++
				}
			}
			want := RunStats{Attempts: uint64(tt.attempts), Retries: uint64(tt.attempts - 1), FreeRetries: uint64(free)}
			if st := r.Stats(); st != want {
				t.Errorf("Stats() = %+v, want %+v", st, want)
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
			if gu.Stop != tt.stop {
				t.Errorf("Stop = %v, want %v", gu.Stop, tt.stop)
			}
			wantKind := KindNoRetry
			if tt.policy != nil {
				wantKind = tt.policy.Kind()
			}
			if gu.Policy != wantKind {
				t.Errorf("Policy = %v, want %v", gu.Policy, wantKind)
			}
			// The attempt list is exactly the attempts' errors, in order.
			if len(gu.Attempts.WrappedErrors()) != tt.attempts || gu.Omitted != 0 {
				t.Fatalf("Attempts = %v (%d omitted), want %d errors", gu.Attempts, gu.Omitted, tt.attempts)
			}
			for i := range gu.Attempts.Errors {
				if gu.Attempts.Errors[i] != tt.errs[i] {
					t.Errorf("Attempts[%d] = %v, want %v", i, gu.Attempts.Errors[i], tt.errs[i])
				}
			}
			if IsPermanent(err) != (tt.stop == errStopPermanent) {
				t.Errorf("IsPermanent(err) = %v, want %v", IsPermanent(err), tt.stop == errStopPermanent)
			}
		})
	}
}

// The method ran: its error (an application error, or an unusable reply)
// is the answer, returned as it is and never retried.
func TestRunMethodRanIsTheAnswer(t *testing.T) {
	unusable := func() error { return Unusable(errors.New("gob: type mismatch")) }
	for _, p := range []Policy{NoRetry(), AtLeastOnce(), AtMostOnce(), ExactlyOnce()} {
		for _, mk := range []func() error{appErr, unusable} {
			want := mk()
			t.Run(p.Kind().String()+"/"+ClassOf(want).String(), func(t *testing.T) {
				s := &script{errs: []error{notSent(), maybe(), want, notSent()}}
				if p.Kind() == KindNoRetry {
					s.errs = s.errs[2:]
				}
				r := &Runner{After: (&fakeTimer{}).After}
				err := r.Run(context.Background(), p, s.attempt)
				if err != want {
					t.Fatalf("Run() = %v, want the attempt's error itself", err)
				}
				if s.calls != len(s.errs)-1 {
					t.Errorf("attempts = %d, want %d", s.calls, len(s.errs)-1)
				}
			})
		}
	}
}

// A success must be a nil interface, not a nil pointer in a non-nil one.
func TestRunSuccessIsTrueNil(t *testing.T) {
	for _, b := range []RetryBudget{nil, DefaultBudget(), NewTokenBucket(10, 0.1)} {
		for _, p := range []Policy{NoRetry(), AtLeastOnce(), AtMostOnce(), ExactlyOnce()} {
			s := &script{errs: []error{notSent(), maybe()}}
			if p.Kind() == KindNoRetry {
				s.errs = nil
			}
			r := &Runner{After: (&fakeTimer{}).After, Budget: b}
			if err := r.Run(context.Background(), p, s.attempt); err != nil {
				t.Errorf("%T %v: Run() = %#v, want nil", b, p.Kind(), err)
			}
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
				s := &script{errs: repeat(100, maybe)}
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
		if !errors.As(err, &gu) || gu.Tried != 0 || gu.Verdict != ErrNotExecuted || gu.Stop != context.Canceled {
			t.Fatalf("Run() = %#v, want a not-executed *GiveUpError with no attempts", err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(err, context.Canceled) = false: %v", err)
		}
		if got, want := err.Error(), "semrpc: at-least-once call failed before it was sent (not executed): context canceled"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
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
		if len(gu.Attempts.WrappedErrors()) != 1 || gu.Stop != context.Canceled {
			t.Errorf("Attempts = %v, Stop = %v; want one attempt error, stopped by context.Canceled", gu.Attempts, gu.Stop)
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
			if len(gu.Attempts.WrappedErrors()) != 1 || gu.Stop != context.Canceled {
				t.Errorf("Attempts = %v, Stop = %v; want one attempt error, stopped by context.Canceled", gu.Attempts, gu.Stop)
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
		if len(gu.Attempts.WrappedErrors())+gu.Omitted != n || gu.Stop != context.Canceled {
			t.Errorf("%d attempts listed, %d omitted, Stop = %v; want %d in all, stopped by context.Canceled",
				len(gu.Attempts.WrappedErrors()), gu.Omitted, gu.Stop, n)
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
	tests := []struct {
		name     string
		policy   Policy
		errs     []error
		allow    int // retries the budget allows
		attempts int
		asked    int // TryRetry calls
		records  []string
		refused  bool
	}{
		{"AtLeastOnce/not-sent retries are free", AtLeastOnce(), repeat(3, notSent), 0, 4, 0,
			[]string{"first:not sent", "retry:not sent", "retry:not sent", "retry:ok"}, false},
		{"AtLeastOnce/maybe-executed retries are charged", AtLeastOnce(), repeat(2, maybe), 5, 3, 2,
			[]string{"first:maybe executed", "retry:maybe executed", "retry:ok"}, false},
		{"AtLeastOnce/refused", AtLeastOnce(), repeat(5, maybe), 1, 2, 2,
			[]string{"first:maybe executed", "retry:maybe executed"}, true},
		{"AtLeastOnce/only sent failures ask", AtLeastOnce(), []error{notSent(), maybe(), notSent(), maybe()}, 2, 5, 2,
			[]string{"first:not sent", "retry:maybe executed", "retry:not sent", "retry:maybe executed", "retry:ok"}, false},
		{"AtLeastOnce/last attempt does not ask", AtLeastOnce(MaxAttempts(2)), repeat(5, maybe), 5, 2, 1,
			[]string{"first:maybe executed", "retry:maybe executed"}, false},
		{"AtLeastOnce/answers are recorded", AtLeastOnce(), []error{maybe(), appErr()}, 5, 2, 1,
			[]string{"first:maybe executed", "retry:application error"}, false},
		{"AtLeastOnce/rejection does not ask", AtLeastOnce(), []error{stale()}, 5, 1, 0,
			[]string{"first:rejected"}, false},
		{"AtMostOnce/never asks", AtMostOnce(), []error{maybe(), maybe(), notSent()}, 0, 4, 0,
			[]string{"first:maybe executed", "retry:maybe executed", "retry:not sent", "retry:ok"}, false},
		{"ExactlyOnce/never asks", ExactlyOnce(), []error{maybe()}, 0, 2, 0,
			[]string{"first:maybe executed", "retry:ok"}, false},
		{"NoRetry/records its attempt", NoRetry(), []error{maybe()}, 5, 1, 0,
			[]string{"first:maybe executed"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBudget{allow: tt.allow}
			r := &Runner{After: (&fakeTimer{}).After, Budget: fb}
			s := &script{errs: tt.errs}
			err := r.Run(context.Background(), tt.policy, s.attempt)
			if s.calls != tt.attempts || fb.asked != tt.asked {
				t.Errorf("attempts = %d, TryRetry calls = %d; want %d and %d", s.calls, fb.asked, tt.attempts, tt.asked)
			}
			if fmt.Sprint(fb.records) != fmt.Sprint(tt.records) {
				t.Errorf("records = %v, want %v", fb.records, tt.records)
			}
			if got := errors.Is(err, ErrBudgetExhausted); got != tt.refused {
				t.Errorf("errors.Is(err, ErrBudgetExhausted) = %v, want %v: %v", got, tt.refused, err)
			}
			want := uint64(0)
			if tt.refused {
				want = 1
			}
			if got := r.Stats().BudgetRefusals; got != want {
				t.Errorf("BudgetRefusals = %d, want %d", got, want)
			}
		})
	}
}

func TestRunBudgetRefusalIsTheStopReason(t *testing.T) {
	r := &Runner{After: (&fakeTimer{}).After, Budget: &fakeBudget{}}
	s := &script{errs: []error{MaybeExecuted(errors.New("connection lost"))}}
	err := r.Run(context.Background(), AtLeastOnce(), s.attempt)
	const want = "semrpc: at-least-once call gave up after 1 attempt (may have executed): " +
		"1) maybe executed: connection lost; stopped: retry budget exhausted"
	if err == nil || err.Error() != want {
		t.Fatalf("Error() =\n%v\nwant\n%s", err, want)
	}
	var gu *GiveUpError
	if !errors.As(err, &gu) || gu.Stop != ErrBudgetExhausted || gu.Tried != 1 || len(gu.Attempts.WrappedErrors()) != 1 {
		t.Errorf("GiveUpError = %+v, want 1 attempt, stopped by ErrBudgetExhausted", gu)
	}
}

// A not-sent attempt is retried, free, whatever the budget and the attempt
// limit, until the context ends.
func TestRunNotSentIsRetriedUntilTheContextEnds(t *testing.T) {
	for _, p := range []Policy{AtLeastOnce(MaxAttempts(1)), AtMostOnce(MaxAttempts(1)), ExactlyOnce(MaxAttempts(1))} {
		t.Run(p.Kind().String(), func(t *testing.T) {
			const n = 50
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			waits := 0
			after := func(time.Duration) <-chan time.Time {
				waits++
				if waits == n {
					cancel()
					return nil
				}
				ch := make(chan time.Time, 1)
				ch <- time.Time{}
				return ch
			}
			fb := &fakeBudget{}
			r := &Runner{After: after, Budget: fb}
			s := &script{errs: repeat(10*n, notSent)}
			err := r.Run(ctx, p, s.attempt)
			if s.calls != n || fb.asked != 0 {
				t.Errorf("attempts = %d, TryRetry calls = %d; want %d and 0", s.calls, fb.asked, n)
			}
			var gu *GiveUpError
			if !errors.As(err, &gu) || gu.Verdict != ErrNotExecuted || gu.Stop != context.Canceled || gu.Tried != n {
				t.Fatalf("Run() = %v, want not executed after %d attempts, stopped by context.Canceled", err, n)
			}
			if st := r.Stats(); st.FreeRetries != n-1 || st.Retries != n-1 {
				t.Errorf("Stats() = %+v, want %d free retries", st, n-1)
			}
		})
	}
}

func TestRunFailureGroupPaysOnce(t *testing.T) {
	grouped := func(g *FailureGroup) func() error {
		return func() error { return Grouped(MaybeExecuted(errors.New("connection lost")), g) }
	}
	g1, g2, g3, g4 := &FailureGroup{}, &FailureGroup{}, &FailureGroup{}, &FailureGroup{}
	tests := []struct {
		name    string
		calls   [][]error // each call's attempt errors, run one after another
		allow   int
		asked   int
		refused int // calls refused
	}{
		{"one group", [][]error{{grouped(g1)()}, {grouped(g1)()}, {grouped(g1)()}}, 1, 1, 0},
		{"a refused group is not paid", [][]error{{grouped(g2)()}, {grouped(g2)()}, {grouped(g2)()}}, 0, 3, 3},
		{"two groups", [][]error{{grouped(g3)()}, {grouped(g4)()}, {grouped(g3)()}, {grouped(g4)()}}, 5, 2, 0},
		{"an ungrouped failure after a paid group pays", [][]error{{grouped(&FailureGroup{})(), maybe()}}, 1, 2, 1},
		{"ungrouped failures each pay", [][]error{{maybe()}, {maybe()}}, 5, 2, 0},
		{"not sent is free anyway", [][]error{{Grouped(notSent(), &FailureGroup{})}}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBudget{allow: tt.allow}
			r := &Runner{After: (&fakeTimer{}).After, Budget: fb}
			refused := 0
			for _, errs := range tt.calls {
				s := &script{errs: errs}
				if err := r.Run(context.Background(), AtLeastOnce(), s.attempt); errors.Is(err, ErrBudgetExhausted) {
					refused++
				} else if err != nil {
					t.Fatalf("Run() = %v", err)
				}
			}
			if fb.asked != tt.asked || refused != tt.refused {
				t.Errorf("TryRetry calls = %d, refused calls = %d; want %d and %d", fb.asked, refused, tt.asked, tt.refused)
			}
		})
	}
}

// Calls failed together by one lost connection, retrying at once, spend one
// retry of a budget that has exactly one.
func TestRunFailureGroupConcurrent(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBudget(1e-9, 10*time.Second, 0.1) // a reserve of 1 retry
	b.SetClock(func() time.Time { return now })
	r := &Runner{After: (&fakeTimer{}).After, Budget: b}
	g := &FailureGroup{}
	const calls = 16
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &script{errs: []error{Grouped(MaybeExecuted(errTimeout), g)}}
			errs <- r.Run(context.Background(), AtLeastOnce(), s.attempt)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Run() = %v, want every call retried and answered", err)
		}
	}
	if got := b.Balance(); got > 0.01 {
		t.Errorf("Balance() = %v, want about 0: one retry spent", got)
	}
}

func TestGiveUpError(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errDial}
	tests := []struct {
		name    string
		policy  Policy
		errs    []error
		message string
		is      []error // errors.Is(err, target) holds
		isNot   []error // errors.Is(err, target) does not hold
	}{
		{"may have executed", AtMostOnce(), []error{notSent(), maybe(), stale()},
			"semrpc: at-most-once call gave up after 3 attempts (may have executed): " +
				"1) not sent: dial refused; 2) maybe executed: timeout; 3) client x seq 3: semrpc: stale request (already acknowledged)",
			[]error{ErrMaybeExecuted, ErrStale, errDial, errTimeout},
			[]error{ErrNotExecuted, ErrNotSent, ErrApplication, errNoKey, context.Canceled, ErrBudgetExhausted}},
		{"not executed", AtLeastOnce(), []error{notSent(), NotSent(opErr), stale()},
			"semrpc: at-least-once call gave up after 3 attempts (not executed): " +
				"1) not sent: dial refused; 2) not sent: dial tcp: dial refused; 3) client x seq 3: semrpc: stale request (already acknowledged)",
			[]error{ErrNotExecuted, ErrStale, errDial},
			[]error{ErrMaybeExecuted, ErrNotSent}},
		{"attempt limit", AtLeastOnce(MaxAttempts(2)), []error{maybe(), notSent(), maybe()},
			"semrpc: at-least-once call gave up after 3 attempts (may have executed): " +
				"1) maybe executed: timeout; 2) not sent: dial refused; 3) maybe executed: timeout; stopped: reached MaxAttempts(2)",
			[]error{ErrMaybeExecuted, errTimeout, errDial},
			[]error{ErrNotExecuted, ErrNotSent}},
		{"permanent", ExactlyOnce(), []error{maybe(), Permanent(NotSent(errors.New("x509: certificate signed by unknown authority")))},
			"semrpc: exactly-once call gave up after 2 attempts (may have executed): " +
				"1) maybe executed: timeout; 2) not sent: x509: certificate signed by unknown authority; stopped: permanent error",
			[]error{ErrMaybeExecuted, errTimeout},
			[]error{ErrNotExecuted, ErrNotSent}},
		// An attempt's error that wraps a verdict of its own (here a nested
		// give-up) cannot make the outer give-up answer both ways.
		{"nested verdict", AtLeastOnce(MaxAttempts(1)), []error{MaybeExecuted(GiveUp(KindAtMostOnce, NotSent(errDial)))},
			"semrpc: at-least-once call gave up after 1 attempt (may have executed): " +
				"1) maybe executed: semrpc: at-most-once call failed before it was sent (not executed): dial refused; stopped: reached MaxAttempts(1)",
			[]error{ErrMaybeExecuted, errDial},
			[]error{ErrNotExecuted, ErrNotSent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{errs: tt.errs}
			err := (&Runner{After: (&fakeTimer{}).After}).Run(context.Background(), tt.policy, s.attempt)
			if err == nil || err.Error() != tt.message {
				t.Errorf("Error() =\n%v\nwant\n%s", err, tt.message)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v) = false, want true", target)
				}
			}
			for _, target := range tt.isNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v) = true, want false", target)
				}
			}
			var ae *AttemptError
			if errors.As(err, &ae) {
				t.Errorf("errors.As found the attempt error %v, want the causes only", ae)
			}
		})
	}

	t.Run("As finds the causes", func(t *testing.T) {
		s := &script{errs: []error{NotSent(opErr), maybe()}}
		err := (&Runner{After: (&fakeTimer{}).After}).Run(context.Background(), AtMostOnce(MaxAttempts(1)), s.attempt)
		var got *net.OpError
		if !errors.As(err, &got) || got != opErr {
			t.Errorf("errors.As(err, *net.OpError) = %v, want the first attempt's cause", got)
		}
		var ne net.Error
		if !errors.As(err, &ne) {
			t.Errorf("errors.As(err, net.Error) = false, want true")
		}
	})

	// A hand-made, empty GiveUpError unwraps to nothing.
	empty := &GiveUpError{Policy: KindNoRetry, Verdict: ErrNotExecuted, Tried: 1}
	if u := empty.Unwrap(); u != nil {
		t.Errorf("Unwrap() = %#v, want nil", u)
	}
	if got, want := empty.Error(), "semrpc: no-retry call gave up after 1 attempt (not executed)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestGiveUpErrorListIsBounded(t *testing.T) {
	numbered := func(n int) []error {
		errs := make([]error, n)
		for i := range errs {
			errs[i] = MaybeExecuted(fmt.Errorf("timeout %d", i+1))
		}
		return errs
	}
	tests := []struct {
		n       int
		listed  []int // attempt numbers kept
		message string
	}{
		{1, []int{1}, "1) maybe executed: timeout 1; stopped: reached MaxAttempts(1)"},
		{8, []int{1, 2, 3, 4, 5, 6, 7, 8}, "4) maybe executed: timeout 4; 5) maybe executed: timeout 5; 6)"},
		{9, []int{1, 2, 3, 4, 6, 7, 8, 9}, "4) maybe executed: timeout 4; … 1 more …; 6) maybe executed: timeout 6; 7)"},
		{1000, []int{1, 2, 3, 4, 997, 998, 999, 1000},
			"4) maybe executed: timeout 4; … 992 more …; 997) maybe executed: timeout 997; 998) maybe executed: timeout 998; " +
				"999) maybe executed: timeout 999; 1000) maybe executed: timeout 1000; stopped: reached MaxAttempts(1000)"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			errs := numbered(tt.n)
			s := &script{errs: errs}
			err := (&Runner{After: (&fakeTimer{}).After}).Run(context.Background(), AtMostOnce(MaxAttempts(tt.n)), s.attempt)
			var gu *GiveUpError
			if !errors.As(err, &gu) {
				t.Fatalf("Run() = %v, want a *GiveUpError", err)
			}
			if gu.Tried != tt.n || gu.Omitted != tt.n-len(tt.listed) || cap(gu.Attempts.Errors) > keepFirst+keepLast {
				t.Errorf("Tried = %d, Omitted = %d, cap(Attempts) = %d; want %d, %d, at most 8",
					gu.Tried, gu.Omitted, cap(gu.Attempts.Errors), tt.n, tt.n-len(tt.listed))
			}
			if len(gu.Attempts.WrappedErrors()) != len(tt.listed) {
				t.Fatalf("Attempts = %v, want attempts %v", gu.Attempts, tt.listed)
			}
			for i, n := range tt.listed {
				if gu.Attempts.Errors[i] != errs[n-1] {
					t.Errorf("Attempts[%d] = %v, want attempt %d's error", i, gu.Attempts.Errors[i], n)
				}
			}
			if msg := err.Error(); !strings.Contains(msg, tt.message) ||
				!strings.HasPrefix(msg, fmt.Sprintf("semrpc: at-most-once call gave up after %d attempt", tt.n)) {
				t.Errorf("Error() = %q, want it to contain %q", msg, tt.message)
			}
		})
	}
}

func TestGiveUp(t *testing.T) {
	tests := []struct {
		name    string
		kind    Kind
		cause   error
		verdict error
		message string
		is      []error
		isNot   []error
	}{
		{"waiting for a window slot", KindAtMostOnce,
			NotSent(fmt.Errorf("rpc: waiting for a window slot: %w", context.DeadlineExceeded)), ErrNotExecuted,
			"semrpc: at-most-once call failed before it was sent (not executed): rpc: waiting for a window slot: context deadline exceeded",
			[]error{ErrNotExecuted, context.DeadlineExceeded}, []error{ErrMaybeExecuted, ErrNotSent}},
		{"not durable", KindExactlyOnce, fmt.Errorf("rpc: exactly-once call refused: %w", ErrNotDurable), ErrNotExecuted,
			"semrpc: exactly-once call failed before it was sent (not executed): rpc: exactly-once call refused: semrpc: server has no durable completion records",
			[]error{ErrNotExecuted, ErrNotDurable}, []error{ErrMaybeExecuted}},
		{"client closed", KindNoRetry, fmt.Errorf("rpc: client closed: %w", ErrRejected), ErrNotExecuted,
			"semrpc: no-retry call failed before it was sent (not executed): rpc: client closed: semrpc: request rejected before execution",
			[]error{ErrNotExecuted, ErrRejected}, []error{ErrMaybeExecuted}},
		{"may have executed", KindAtLeastOnce, MaybeExecuted(errTimeout), ErrMaybeExecuted,
			"semrpc: at-least-once call failed (may have executed): timeout",
			[]error{ErrMaybeExecuted, errTimeout}, []error{ErrNotExecuted, ErrNotSent}},
		{"unclassified is maybe", KindAtMostOnce, errTimeout, ErrMaybeExecuted,
			"semrpc: at-most-once call failed (may have executed): timeout",
			[]error{ErrMaybeExecuted, errTimeout}, []error{ErrNotExecuted}},
		{"budget", KindAtLeastOnce, NotSent(ErrBudgetExhausted), ErrNotExecuted,
			"semrpc: at-least-once call failed before it was sent (not executed): retry budget exhausted",
			[]error{ErrNotExecuted, ErrBudgetExhausted}, []error{ErrMaybeExecuted, ErrNotSent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gu := GiveUp(tt.kind, tt.cause)
			if gu.Policy != tt.kind || gu.Verdict != tt.verdict || gu.Tried != 0 || len(gu.Attempts.WrappedErrors()) != 0 || gu.Stop != tt.cause {
				t.Errorf("GiveUp() = %+v, want policy %v, verdict %v, no attempts, Stop = cause", gu, tt.kind, tt.verdict)
			}
			if got := gu.Error(); got != tt.message {
				t.Errorf("Error() =\n%s\nwant\n%s", got, tt.message)
			}
			var err error = gu
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v) = false, want true", target)
				}
			}
			for _, target := range tt.isNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v) = true, want false", target)
				}
			}
		})
	}
	if !IsPermanent(GiveUp(KindAtLeastOnce, Permanent(NotSent(errDial)))) {
		t.Errorf("IsPermanent(GiveUp(Permanent(...))) = false, want true")
	}
}

// Whatever the attempts, a give-up answers "did it run?" one way only, and
// truthfully.
func TestGiveUpVerdictsNeverBoth(t *testing.T) {
	kinds := []func() error{
		notSent, maybe, stale,
		func() error { return errTimeout },
		func() error { return Permanent(notSent()) },
		func() error { return Grouped(maybe(), &FailureGroup{}) },
		func() error { return NotSent(GiveUp(KindAtMostOnce, maybe())) },
		func() error { return MaybeExecuted(fmt.Errorf("wrapped: %w", ErrNotExecuted)) },
		func() error { return fmt.Errorf("refused: %w", ErrNotExecuted) },
		func() error { return fmt.Errorf("x: %w", NotSent(errDial)) },
	}
	policies := []Policy{NoRetry(), AtLeastOnce(MaxAttempts(3)), AtMostOnce(MaxAttempts(4)), ExactlyOnce(MaxAttempts(2))}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		errs := make([]error, 1+rng.IntN(12))
		for j := range errs {
			errs[j] = kinds[rng.IntN(len(kinds))]()
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancelAt := rng.IntN(15)
		s := &script{errs: errs}
		attempt := func(ctx context.Context) error {
			if s.calls == cancelAt {
				cancel()
			}
			return s.attempt(ctx)
		}
		err := (&Runner{After: (&fakeTimer{}).After, Budget: &fakeBudget{allow: rng.IntN(3)}}).Run(ctx, policies[rng.IntN(len(policies))], attempt)
		cancel()
		var gu *GiveUpError
		if !errors.As(err, &gu) {
			continue
		}
		ran := false
		for _, e := range errs[:s.calls] {
			ran = ran || ClassOf(e) == ClassMaybeExecuted
		}
		isMaybe, isNot := errors.Is(err, ErrMaybeExecuted), errors.Is(err, ErrNotExecuted)
		if isMaybe == isNot || isMaybe != ran || (isMaybe && errors.Is(err, ErrNotSent)) {
			t.Fatalf("%v: Is(ErrMaybeExecuted) = %v, Is(ErrNotExecuted) = %v, Is(ErrNotSent) = %v; an attempt may have run: %v",
				err, isMaybe, isNot, errors.Is(err, ErrNotSent), ran)
		}
	}
}

func TestRunConcurrent(t *testing.T) {
	ft := &fakeTimer{}
	r := &Runner{After: ft.After, Budget: NewTokenBucket(1000, 1)}
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
		r := &Runner{Budget: DefaultBudget()}
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
		{AtLeastOnce(), KindAtLeastOnce, 0, DefaultAtLeastOnceAttempts},
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
		budget RetryBudget
	}{
		{"NoRetry", NoRetry(), nil},
		{"AtLeastOnce", AtLeastOnce(), nil},
		{"AtLeastOnce+Budget", AtLeastOnce(), DefaultBudget()},
		{"AtLeastOnce+TokenBucket", AtLeastOnce(), NewTokenBucket(10, 0.1)},
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
					return errMaybeBench
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
	errMaybeBench  = MaybeExecuted(errTimeout)
	closedTimeChan = func() <-chan time.Time { ch := make(chan time.Time); close(ch); return ch }()
)
