package testwait

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// failRecorder is a testing.TB whose Fatalf records the message and ends
// its goroutine, as the real one does.
type failRecorder struct {
	testing.TB // nil: For uses only Helper and Fatalf
	msg        string
}

func (r *failRecorder) Helper() {}

func (r *failRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runFor runs For on a goroutine of its own (Fatalf ends it) and returns
// what it failed with, or "" if it returned.
func runFor(what string, cond func() bool) string {
	r := &failRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		For(r, what, cond)
	}()
	<-done
	return r.msg
}

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var looks atomic.Int64
	go func() {
		time.Sleep(5 * time.Millisecond)
		looks.Store(100)
	}()
	if msg := runFor("the counter", func() bool { return looks.Add(1) > 100 }); msg != "" {
		t.Fatalf("For failed: %s", msg)
	}
}

func TestForReturnsAtOnceForAConditionThatHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if msg := runFor("nothing", func() bool { return true }); msg != "" {
			t.Fatalf("For failed: %s", msg)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("For slept %v on a condition that held", d)
		}
	})
}

// In a bubble the deadline passes in fake time, at once for real.
func TestForFailsAfterTheDeadlineNamingWhatItWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		msg := runFor("the moon to turn blue", func() bool { return false })
		if !strings.Contains(msg, "the moon to turn blue") {
			t.Errorf("For failed with %q, want it to name what it waited for", msg)
		}
		if d := time.Since(start); d < Deadline || d > Deadline+time.Second {
			t.Errorf("For failed after %v, want %v", d, Deadline)
		}
	})
}

func TestUntilReportsWhetherTheConditionHeldInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if Until(3*time.Second, func() bool { return false }) {
			t.Error("Until reported a condition that never held")
		}
		if d := time.Since(start); d < 3*time.Second || d > 4*time.Second {
			t.Errorf("Until gave up after %v, want 3s", d)
		}
		start = time.Now()
		if !Until(3*time.Second, func() bool { return time.Since(start) >= time.Second }) {
			t.Error("Until missed a condition that held within its time")
		}
	})
}
