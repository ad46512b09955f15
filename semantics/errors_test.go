package semantics

import (
	"github.com/hashicorp/go-multierror"

	"context"
	"errors"
	"fmt"
	"testing"
)

func TestClassOf(t *testing.T) {
	g := &FailureGroup{}
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassNone},
		{"not sent", NotSent(errDial), ClassNotSent},
		{"maybe executed", MaybeExecuted(errTimeout), ClassMaybeExecuted},
		{"unclassified", errTimeout, ClassMaybeExecuted},
		{"application", appErr(), ClassApplication},
		{"unusable", Unusable(errors.New("gob: bad reply")), ClassUnusable},
		{"unusable sentinel", fmt.Errorf("reply too large: %w", ErrReplyUnusable), ClassUnusable},
		{"unusable beats application", fmt.Errorf("%w: %w", ErrApplication, Unusable(errDial)), ClassUnusable},
		{"maybe beats not sent", fmt.Errorf("%w: %w", NotSent(errDial), MaybeExecuted(errTimeout)), ClassMaybeExecuted},
		{"stale", stale(), ClassRejected},
		{"rejected", fmt.Errorf("closed: %w", ErrRejected), ClassRejected},
		{"not executed", fmt.Errorf("refused: %w", ErrNotExecuted), ClassRejected},
		{"permanent keeps the class", Permanent(NotSent(errDial)), ClassNotSent},
		{"permanent inside", NotSent(Permanent(errDial)), ClassNotSent},
		{"permanent unclassified", Permanent(errDial), ClassMaybeExecuted},
		{"grouped keeps the class", Grouped(NotSent(errDial), g), ClassNotSent},
		{"grouped maybe", Grouped(MaybeExecuted(errTimeout), g), ClassMaybeExecuted},
		{"not-executed give-up", GiveUp(KindAtMostOnce, NotSent(errDial)), ClassRejected},
		{"may-have-executed give-up", GiveUp(KindAtMostOnce, MaybeExecuted(errDial)), ClassMaybeExecuted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassOf(tt.err); got != tt.want {
				t.Errorf("ClassOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	want := map[Class]string{
		ClassNone: "ok", ClassNotSent: "not sent", ClassMaybeExecuted: "maybe executed",
		ClassApplication: "application error", ClassRejected: "rejected", ClassUnusable: "reply unusable",
		Class(9): "Class(9)",
	}
	for c, s := range want {
		if got := c.String(); got != s {
			t.Errorf("Class(%d).String() = %q, want %q", c, got, s)
		}
	}
}

func TestAttemptErrorIs(t *testing.T) {
	tests := []struct {
		err   error
		is    []error
		isNot []error
	}{
		{NotSent(errDial), []error{ErrNotSent, ErrNotExecuted, errDial}, []error{ErrMaybeExecuted, ErrApplication, ErrReplyUnusable}},
		{MaybeExecuted(errTimeout), []error{ErrMaybeExecuted, errTimeout}, []error{ErrNotSent, ErrNotExecuted}},
		{Unusable(errDial), []error{ErrReplyUnusable, errDial}, []error{ErrApplication, ErrNotExecuted, ErrMaybeExecuted}},
		{&AttemptError{Class: ClassApplication, Err: errNoKey}, []error{ErrApplication, errNoKey}, []error{ErrReplyUnusable}},
		{&AttemptError{Class: ClassRejected, Err: ErrStale}, []error{ErrStale}, []error{ErrNotExecuted, ErrNotSent}},
	}
	for _, tt := range tests {
		for _, target := range tt.is {
			if !errors.Is(tt.err, target) {
				t.Errorf("errors.Is(%v, %v) = false, want true", tt.err, target)
			}
		}
		for _, target := range tt.isNot {
			if errors.Is(tt.err, target) {
				t.Errorf("errors.Is(%v, %v) = true, want false", tt.err, target)
			}
		}
	}
	if got, want := Unusable(errDial).Error(), "reply unusable: dial refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestPermanent(t *testing.T) {
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	err := Permanent(NotSent(context.DeadlineExceeded))
	if !IsPermanent(err) || !IsPermanent(fmt.Errorf("dial: %w", err)) {
		t.Error("IsPermanent = false for a permanent error, want true")
	}
	if IsPermanent(NotSent(errDial)) || IsPermanent(nil) {
		t.Error("IsPermanent = true for an ordinary error, want false")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNotSent) {
		t.Errorf("errors.Is does not see through Permanent: %v", err)
	}
	if got, want := err.Error(), "not sent: context deadline exceeded"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestGrouped(t *testing.T) {
	g := &FailureGroup{}
	if Grouped(nil, g) != nil {
		t.Error("Grouped(nil, g) != nil")
	}
	plain := MaybeExecuted(errTimeout)
	if Grouped(plain, nil) != plain {
		t.Error("Grouped(err, nil) != err")
	}
	err := fmt.Errorf("rpc: KV.Get: %w", Grouped(plain, g))
	if groupOf(err) != g || groupOf(plain) != nil {
		t.Errorf("groupOf() does not find the group")
	}
	if !errors.Is(err, ErrMaybeExecuted) || !errors.Is(err, errTimeout) {
		t.Errorf("errors.Is does not see through Grouped: %v", err)
	}
	var ae *AttemptError
	if !errors.As(err, &ae) || ae != plain {
		t.Errorf("errors.As does not see through Grouped: %v", err)
	}
	if got, want := err.Error(), "rpc: KV.Get: maybe executed: timeout"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// The causes a give-up exposes read as the errors they stand for, without
// their class.
func TestGiveUpErrorCauses(t *testing.T) {
	gu := &GiveUpError{
		Policy: KindAtLeastOnce, Verdict: ErrMaybeExecuted, Tried: 2,
		Attempts: multierror.Append(nil, Grouped(MaybeExecuted(errTimeout), &FailureGroup{}), NotSent(Permanent(errDial))),
		Stop:     context.Canceled,
	}
	var got []string
	for _, c := range gu.Unwrap() {
		got = append(got, c.Error())
	}
	if want := "[timeout dial refused context canceled]"; fmt.Sprint(got) != want {
		t.Errorf("causes = %v, want %s", got, want)
	}
	if !IsPermanent(gu) {
		t.Error("IsPermanent(give-up with a permanent attempt) = false, want true")
	}
}
