package semantics

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-multierror"
)

// Runner runs calls under a policy: it makes the attempts, waits between
// them and decides when to give up. Use one Runner per client (it carries
// the client's retry budget and counters). A Runner is safe for concurrent
// use; its zero value is ready to use, without a budget. Do not copy a
// Runner after first use.
type Runner struct {
	// Budget, if not nil, is the retry budget shared by the client's calls.
	// Every attempt of every policy feeds it (it measures the server's
	// health); only at-least-once retries are refused by it. At-most-once
	// and exactly-once calls must complete within their deadline and are
	// made safe to retry by the server's dedup table, so refusing their
	// retries would only turn an answer the caller is waiting for into a
	// may-have-executed error.
	Budget *Budget

	// After returns a channel that receives once d has passed, as
	// time.After does. Tests inject a fake; nil means a real timer, stopped
	// as soon as the call's context ends.
	After func(d time.Duration) <-chan time.Time

	attempts       atomic.Uint64
	retries        atomic.Uint64
	budgetRefusals atomic.Uint64
}

// RunStats counts what a Runner did since it was created.
type RunStats struct {
	// Attempts is the number of attempts started, first attempts included.
	Attempts uint64
	// Retries is the number of attempts started after a failed one.
	Retries uint64
	// BudgetRefusals is the number of calls that ended because the retry
	// budget refused a retry.
	BudgetRefusals uint64
}

// Stats returns the runner's counters.
func (r *Runner) Stats() RunStats {
	return RunStats{
		Attempts:       r.attempts.Load(),
		Retries:        r.retries.Load(),
		BudgetRefusals: r.budgetRefusals.Load(),
	}
}

// Run calls attempt until it succeeds, fails finally, or the policy or ctx
// gives up. A nil policy is NoRetry. attempt's error must carry a class
// (see ClassOf): errors without one are taken as maybe executed.
//
// Run returns nil on success, the attempt's error unchanged when it is an
// application error (the method ran; its error is the answer), and
// otherwise a *GiveUpError listing every attempt's error. Attempts that were
// not sent or may have executed are retried by every policy but NoRetry;
// an application error or a server refusal (ClassRejected) is never retried.
// No attempt starts after ctx has ended, and a wait between attempts ends as
// soon as ctx does.
func (r *Runner) Run(ctx context.Context, p Policy, attempt func(ctx context.Context) error) error {
	var pc *policyConfig
	if p != nil {
		pc = p.config()
	} else {
		pc = noRetry.config()
	}
	var (
		errs  *multierror.Error
		bo    *backoff.ExponentialBackOff // built at the first retry, so success costs nothing
		maybe bool                        // an attempt may have executed
		tried int
	)
	for {
		if err := ctx.Err(); err != nil {
			errs = multierror.Append(errs, err)
			return r.giveUp(pc.kind, maybe, tried, errs)
		}
		if tried > 0 {
			r.retries.Add(1)
		}
		tried++
		r.attempts.Add(1)
		err := attempt(ctx)
		class := ClassOf(err)
		if r.Budget != nil {
			if class == ClassNotSent || class == ClassMaybeExecuted {
				r.Budget.Failure()
			} else {
				r.Budget.Success()
			}
		}
		switch class {
		case ClassNone:
			return nil
		case ClassApplication:
			return err
		case ClassMaybeExecuted:
			maybe = true
		}
		errs = multierror.Append(errs, err)

		if class == ClassRejected || pc.kind == KindNoRetry ||
			(pc.maxAttempts > 0 && tried >= pc.maxAttempts) {
			return r.giveUp(pc.kind, maybe, tried, errs)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			errs = multierror.Append(errs, ctxErr)
			return r.giveUp(pc.kind, maybe, tried, errs)
		}
		if pc.kind == KindAtLeastOnce && r.Budget != nil && !r.Budget.AllowRetry() {
			r.budgetRefusals.Add(1)
			errs = multierror.Append(errs, ErrBudgetExhausted)
			return r.giveUp(pc.kind, maybe, tried, errs)
		}
		if bo == nil {
			bo = pc.newBackOff()
		}
		if ctxErr := r.wait(ctx, bo.NextBackOff()); ctxErr != nil {
			errs = multierror.Append(errs, ctxErr)
			return r.giveUp(pc.kind, maybe, tried, errs)
		}
	}
}

// wait sleeps for d or until ctx ends, and returns ctx's error in the
// latter case.
func (r *Runner) wait(ctx context.Context, d time.Duration) error {
	if r.After != nil {
		select {
		case <-r.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}

func (r *Runner) giveUp(kind Kind, maybe bool, tried int, errs *multierror.Error) error {
	verdict := ErrNotExecuted
	if maybe {
		verdict = ErrMaybeExecuted
	}
	return &GiveUpError{Policy: kind, Verdict: verdict, Attempts: errs, Tried: tried}
}

// GiveUpError is returned by Runner.Run when a call failed without an
// answer. Its Verdict tells the caller whether the method may have run.
//
// errors.Is(err, ErrMaybeExecuted) and errors.Is(err, ErrNotExecuted) tell
// the verdict (never both); errors.Is and errors.As also find each
// attempt's error, and the context's error when the context ended the call.
type GiveUpError struct {
	// Policy is the policy the call ran under.
	Policy Kind
	// Verdict is ErrMaybeExecuted if any attempt may have executed, and
	// ErrNotExecuted otherwise: then the method definitely did not run.
	Verdict error
	// Attempts holds every attempt's error in order, then ctx.Err() if the
	// context ended the call, or ErrBudgetExhausted if the retry budget
	// refused a retry.
	Attempts *multierror.Error
	// Tried is the number of attempts made, which may be 0 if the context
	// had ended before the call.
	Tried int
}

// Error reads, for example, "semrpc: at-most-once call gave up after 2
// attempts (may have executed): 1) not sent: dial refused; 2) maybe
// executed: timeout".
func (e *GiveUpError) Error() string {
	var b strings.Builder
	b.WriteString("semrpc: ")
	b.WriteString(e.Policy.String())
	b.WriteString(" call gave up after ")
	b.WriteString(strconv.Itoa(e.Tried))
	if e.Tried == 1 {
		b.WriteString(" attempt")
	} else {
		b.WriteString(" attempts")
	}
	switch {
	case errors.Is(e.Verdict, ErrMaybeExecuted):
		b.WriteString(" (may have executed)")
	case errors.Is(e.Verdict, ErrNotExecuted):
		b.WriteString(" (not executed)")
	}
	for i, err := range e.Attempts.WrappedErrors() {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(") ")
		b.WriteString(err.Error())
	}
	return b.String()
}

// Is reports whether target is the verdict.
func (e *GiveUpError) Is(target error) bool {
	return target != nil && target == e.Verdict
}

// Unwrap returns the attempt errors, so that errors.Is and errors.As look
// into each of them.
func (e *GiveUpError) Unwrap() error {
	if e.Attempts == nil {
		return nil // not a typed nil in a non-nil interface
	}
	return e.Attempts.ErrorOrNil()
}
