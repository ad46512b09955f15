package semantics

import (
	"context"
	"errors"
	"fmt"
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
	// Budget, if not nil, is the retry budget shared by the client's calls
	// (DefaultBudget is the usual choice). Every attempt of every policy is
	// recorded in it; only at-least-once retries of attempts that may have
	// executed ask it (TryRetry) and may be refused. A not-sent attempt is
	// retried free. At-most-once and exactly-once calls must complete
	// within their deadline and are made safe to retry by the server's dedup
	// table, so refusing their retries would only turn an answer the caller
	// is waiting for into a may-have-executed error. Failures that share a
	// FailureGroup pay for one retry between them.
	Budget RetryBudget

	// After returns a channel that receives once d has passed, as
	// time.After does. Tests inject a fake; nil means a real timer, stopped
	// as soon as the call's context ends.
	After func(d time.Duration) <-chan time.Time

	attempts       atomic.Uint64
	retries        atomic.Uint64
	freeRetries    atomic.Uint64
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
	// FreeRetries is the number of Retries that followed a not-sent
	// attempt: they count toward no MaxAttempts and no budget.
	FreeRetries uint64
}

// Stats returns the runner's counters.
func (r *Runner) Stats() RunStats {
	return RunStats{
		Attempts:       r.attempts.Load(),
		Retries:        r.retries.Load(),
		BudgetRefusals: r.budgetRefusals.Load(),
		FreeRetries:    r.freeRetries.Load(),
	}
}

// errStopPermanent is the stop reason of a call ended by a Permanent error.
var errStopPermanent = errors.New("permanent error")

// attemptLimit is the stop reason of a call that reached MaxAttempts(n).
type attemptLimit int

func (n attemptLimit) Error() string { return "reached MaxAttempts(" + strconv.Itoa(int(n)) + ")" }

// Run calls attempt until it succeeds, fails finally, or the policy or ctx
// gives up. A nil policy is NoRetry. attempt's error must carry a class
// (see ClassOf): errors without one are taken as maybe executed.
//
// Run returns nil on success, the attempt's error unchanged when the method
// ran (an application error, which is the answer, or an unusable reply), and
// otherwise a *GiveUpError. Every policy but NoRetry retries attempts that
// were not sent or may have executed; a server refusal (ClassRejected) or an
// error marked Permanent ends the call at once. A not-sent attempt is free:
// it counts toward no MaxAttempts and is not charged to the retry budget, so
// a retrying policy waits for a server that is down until ctx ends. No
// attempt starts after ctx has ended, and a wait between attempts ends as
// soon as ctx does.
func (r *Runner) Run(ctx context.Context, p Policy, attempt func(ctx context.Context) error) error {
	return r.RunUntil(ctx, time.Time{}, p, attempt)
}

// ErrRetryDeadline is the stop reason of a call whose retry deadline (see
// RunUntil) passed. It wraps context.DeadlineExceeded.
var ErrRetryDeadline = fmt.Errorf("semrpc: retry deadline passed: %w", context.DeadlineExceeded)

// RunUntil is Run with a retry deadline: no retry starts at or after
// deadline (a zero deadline is none), and a wait between attempts ends at
// it. Unlike a context deadline it does not end an attempt in progress, and
// it costs nothing on a call whose first attempt succeeds: package rpc uses
// it to bound the retries of a call whose context has no deadline.
func (r *Runner) RunUntil(ctx context.Context, deadline time.Time, p Policy, attempt func(ctx context.Context) error) error {
	var pc *policyConfig
	if p != nil {
		pc = p.config()
	} else {
		pc = noRetry.config()
	}
	var (
		log     attemptLog
		bo      *backoff.ExponentialBackOff // built at the first retry, so success costs nothing
		maybe   bool                        // an attempt may have executed
		tried   int                         // every attempt
		charged int                         // attempts that count toward maxAttempts
		free    bool                        // the next attempt retries a not-sent one
	)
	for {
		if err := ctx.Err(); err != nil {
			return r.giveUp(pc.kind, maybe, tried, &log, err)
		}
		if tried > 0 {
			r.retries.Add(1)
			if free {
				r.freeRetries.Add(1)
			}
		}
		first := tried == 0
		tried++
		r.attempts.Add(1)
		err := attempt(ctx)
		class := ClassOf(err)
		if r.Budget != nil {
			r.Budget.Record(first, class)
		}
		switch class {
		case ClassNone:
			return nil
		case ClassApplication, ClassUnusable:
			return err
		case ClassMaybeExecuted:
			maybe = true
		}
		log.add(err)
		free = class == ClassNotSent
		if !free {
			charged++
		}

		switch {
		case IsPermanent(err):
			return r.giveUp(pc.kind, maybe, tried, &log, errStopPermanent)
		case class == ClassRejected || pc.kind == KindNoRetry:
			return r.giveUp(pc.kind, maybe, tried, &log, nil)
		case pc.maxAttempts > 0 && charged >= pc.maxAttempts:
			return r.giveUp(pc.kind, maybe, tried, &log, attemptLimit(pc.maxAttempts))
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return r.giveUp(pc.kind, maybe, tried, &log, ctxErr)
		}
		if !free && pc.kind == KindAtLeastOnce && r.Budget != nil && !r.chargeRetry(err) {
			r.budgetRefusals.Add(1)
			return r.giveUp(pc.kind, maybe, tried, &log, ErrBudgetExhausted)
		}
		if bo == nil {
			bo = pc.newBackOff()
		}
		pause := bo.NextBackOff()
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return r.giveUp(pc.kind, maybe, tried, &log, ErrRetryDeadline)
			}
			pause = min(pause, left)
		}
		if ctxErr := r.wait(ctx, pause); ctxErr != nil {
			return r.giveUp(pc.kind, maybe, tried, &log, ctxErr)
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return r.giveUp(pc.kind, maybe, tried, &log, ErrRetryDeadline)
		}
	}
}

// chargeRetry asks the budget for the retry of an attempt that failed with
// err. A failure whose group already paid for a retry is not charged again.
func (r *Runner) chargeRetry(err error) bool {
	if g := groupOf(err); g != nil {
		return g.pay(r.Budget)
	}
	return r.Budget.TryRetry()
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

func (r *Runner) giveUp(kind Kind, maybe bool, tried int, log *attemptLog, stop error) error {
	verdict := ErrNotExecuted
	if maybe {
		verdict = ErrMaybeExecuted
	}
	attempts, omitted := log.list()
	return newGiveUp(kind, verdict, tried, attempts, omitted, stop)
}

// Bounds of the attempt list of a GiveUpError.
const (
	keepFirst = 4 // the first attempts' errors kept
	keepLast  = 4 // the last attempts' errors kept
)

// attemptLog keeps the errors of the first and last attempts of a call,
// whatever their number. Its zero value is empty.
type attemptLog struct {
	first   [keepFirst]error
	last    [keepLast]error // a ring once full; next is its oldest entry
	nFirst  int
	nLast   int
	next    int
	omitted int // errors dropped between first and last
}

func (l *attemptLog) add(err error) {
	switch {
	case l.nFirst < keepFirst:
		l.first[l.nFirst] = err
		l.nFirst++
	case l.nLast < keepLast:
		l.last[l.nLast] = err
		l.nLast++
	default:
		l.last[l.next] = err
		l.next = (l.next + 1) % keepLast
		l.omitted++
	}
}

// list gathers the kept errors in order (go-multierror), and returns how
// many were dropped between the first keepFirst and the rest.
func (l *attemptLog) list() (*multierror.Error, int) {
	if l.nFirst == 0 {
		return nil, 0
	}
	errs := multierror.Append(nil, l.first[:l.nFirst]...)
	for i := 0; i < l.nLast; i++ {
		errs = multierror.Append(errs, l.last[(l.next+i)%keepLast])
	}
	return errs, l.omitted
}

// GiveUp returns the error of a call that failed, before any attempt or
// without more of them, for a local reason: cause (waiting for a window
// slot, the client closed, an exactly-once call refused by a server whose
// records are not durable, a failed session handshake). The verdict follows
// cause's class: not sent or rejected means ErrNotExecuted, any other class
// ErrMaybeExecuted. kind is the policy the call ran under, so the error is
// labelled with it. Tried is 0 and cause is the stop reason; errors.Is and
// errors.As find what cause wraps, but not its class.
func GiveUp(kind Kind, cause error) *GiveUpError {
	verdict := ErrMaybeExecuted
	switch ClassOf(cause) {
	case ClassNone, ClassNotSent, ClassRejected:
		verdict = ErrNotExecuted
	}
	return newGiveUp(kind, verdict, 0, nil, 0, cause)
}

// newGiveUp builds every give-up, Run's and GiveUp's.
func newGiveUp(kind Kind, verdict error, tried int, attempts *multierror.Error, omitted int, stop error) *GiveUpError {
	return &GiveUpError{Policy: kind, Verdict: verdict, Tried: tried, Attempts: attempts, Omitted: omitted, Stop: stop}
}

// GiveUpError is returned by Runner.Run (and GiveUp) when a call failed
// without an answer. Its Verdict tells the caller whether the method may
// have run.
//
// errors.Is(err, ErrMaybeExecuted) and errors.Is(err, ErrNotExecuted) tell
// the verdict, never both. errors.Is and errors.As also find the causes of
// the listed attempts' errors and the stop reason (ctx.Err(),
// ErrBudgetExhausted, ErrStale, a *net.OpError...), but not their classes:
// a give-up that may have executed is never errors.Is(err, ErrNotSent),
// even if some of its attempts were not sent.
type GiveUpError struct {
	// Policy is the policy the call ran under.
	Policy Kind
	// Verdict is ErrMaybeExecuted if any attempt may have executed, and
	// ErrNotExecuted otherwise: then the method definitely did not run.
	Verdict error
	// Tried is the number of attempts made, which is 0 if the call failed
	// before its first (see GiveUp).
	Tried int
	// Attempts holds the errors of the first 4 attempts and of the last 4,
	// in order; Omitted counts the attempts between them, whose errors were
	// not kept. So len(Attempts)+Omitted == Tried for Run's give-ups.
	Attempts *multierror.Error
	Omitted  int
	// Stop is why the call stopped when its last attempt's error does not
	// say it: ctx.Err(), ErrBudgetExhausted, the attempt limit, a permanent
	// error, or GiveUp's cause. It is nil when the policy does not retry
	// the last attempt's class (a rejection, or any failure under NoRetry).
	Stop error
}

// Error reads, for example, "semrpc: at-most-once call gave up after 2
// attempts (may have executed): 1) not sent: dial refused; 2) maybe
// executed: timeout; stopped: context deadline exceeded", or for GiveUp
// "semrpc: at-most-once call failed before it was sent (not executed): rpc:
// waiting for a window slot: context deadline exceeded". Only attempts are
// numbered; "… N more …" stands for the omitted ones.
func (e *GiveUpError) Error() string {
	var b strings.Builder
	b.WriteString("semrpc: ")
	b.WriteString(e.Policy.String())
	notExecuted := errors.Is(e.Verdict, ErrNotExecuted)
	switch {
	case e.Tried == 0 && len(e.Attempts.WrappedErrors()) == 0 && notExecuted:
		b.WriteString(" call failed before it was sent")
	case e.Tried == 0 && len(e.Attempts.WrappedErrors()) == 0:
		b.WriteString(" call failed")
	default:
		b.WriteString(" call gave up after ")
		b.WriteString(strconv.Itoa(e.Tried))
		if e.Tried == 1 {
			b.WriteString(" attempt")
		} else {
			b.WriteString(" attempts")
		}
	}
	switch {
	case errors.Is(e.Verdict, ErrMaybeExecuted):
		b.WriteString(" (may have executed)")
	case notExecuted:
		b.WriteString(" (not executed)")
	}
	sep := ": "
	for i, err := range e.Attempts.WrappedErrors() {
		n := i + 1
		if e.Omitted > 0 && i >= keepFirst {
			if i == keepFirst {
				b.WriteString(sep)
				b.WriteString("… ")
				b.WriteString(strconv.Itoa(e.Omitted))
				b.WriteString(" more …")
			}
			n += e.Omitted
		}
		b.WriteString(sep)
		sep = "; "
		b.WriteString(strconv.Itoa(n))
		b.WriteString(") ")
		b.WriteString(err.Error())
	}
	if e.Stop != nil {
		if len(e.Attempts.WrappedErrors()) > 0 {
			b.WriteString("; stopped: ")
		} else {
			b.WriteString(": ")
		}
		b.WriteString(strings.TrimPrefix(stripClass(e.Stop).Error(), "semrpc: "))
	}
	return b.String()
}

// Is reports whether target is the verdict.
func (e *GiveUpError) Is(target error) bool {
	return target != nil && target == e.Verdict
}

// Unwrap returns the causes of the listed attempts' errors and the stop
// reason, each stripped of its class (the AttemptError, FailureGroup and
// Permanent wrappers around it) and hiding the class and verdict sentinels
// (ErrNotSent, ErrMaybeExecuted, ErrNotExecuted, ErrApplication,
// ErrReplyUnusable) of anything it wraps, so that errors.Is and errors.As
// find each cause while the give-up's only verdict is its own.
func (e *GiveUpError) Unwrap() []error {
	n := len(e.Attempts.WrappedErrors())
	if e.Stop != nil {
		n++
	}
	if n == 0 {
		return nil
	}
	causes := make([]error, 0, n)
	for _, err := range e.Attempts.WrappedErrors() {
		if err != nil {
			causes = append(causes, newCause(err))
		}
	}
	if e.Stop != nil {
		causes = append(causes, newCause(e.Stop))
	}
	return causes
}

// stripClass removes the wrappers that give err its class or steer the
// retry loop, from the outside in.
func stripClass(err error) error {
	for {
		switch w := err.(type) {
		case *AttemptError:
			err = w.Err
		case *groupedError:
			err = w.err
		case *permanentError:
			err = w.err
		default:
			return err
		}
	}
}

// cause is an error as a GiveUpError exposes it: see GiveUpError.Unwrap.
type cause struct {
	err       error           // stripped of its class
	permanent *permanentError // the Permanent mark that was stripped, if any
}

func newCause(err error) *cause {
	c := &cause{err: stripClass(err)}
	errors.As(err, &c.permanent)
	return c
}

func (c *cause) Error() string { return c.err.Error() }

// Is finds target in the cause, unless it is a class or verdict sentinel.
func (c *cause) Is(target error) bool {
	return !isClassSentinel(target) && errors.Is(c.err, target)
}

// As finds target in the cause; a permanent mark stays visible to
// IsPermanent.
func (c *cause) As(target any) bool {
	if p, ok := target.(**permanentError); ok && c.permanent != nil {
		*p = c.permanent
		return true
	}
	return errors.As(c.err, target)
}
