package labtest

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/semrpc/semrpc/labrpc/internal/labhook"
)

// DefaultLatency is the virtual time each labrpc message takes under
// Virtual unless LABTEST_LATENCY or WithLatency says otherwise. Without it,
// a client loop bounded by elapsed time ("as many operations as fit in 5
// seconds") would never let the clock advance.
const DefaultLatency = time.Millisecond

// Tuning of the detector; variables so that tests can shorten them.
var (
	// slowWindow is the real time over which the virtual clock must keep up
	// with the real one.
	slowWindow = time.Second
	// sampleEvery is how often the real-time watchdog samples the clocks.
	sampleEvery = 100 * time.Millisecond
	// heartbeat is the virtual period at which the bubble reports its clock.
	heartbeat = 10 * time.Millisecond
	// spinLimit is how long, called outside the command, a test's virtual
	// clock may stand still while its goroutines run before the test
	// fails as spinning.
	spinLimit = 3 * time.Second
)

// Environment variables through which the labtest command (or a user)
// steers Virtual.
const (
	// EnvReal, if set to 1, runs every test in real time.
	EnvReal = "LABTEST_REAL"
	// EnvRealTests is a comma-separated list of test names to run in real
	// time (the command sets it for tests that tripped the detector).
	EnvRealTests = "LABTEST_REAL_TESTS"
	// EnvLatency is the virtual latency of a labrpc message, as a Go
	// duration ("1ms", "0").
	EnvLatency = "LABTEST_LATENCY"
	// EnvStrict, if set to 1, fails a test that leaves goroutines blocked
	// or sleeps or waits on a channel while holding a lock (see Strict).
	EnvStrict = "LABTEST_STRICT"
	// EnvTraceDir is the directory where the traces of failing tests are
	// written (default: the system's temporary directory).
	EnvTraceDir = "LABTEST_TRACE_DIR"
	// EnvTrace, if set to 0, turns the trace of labrpc networks off
	// (it is on during labtest runs so that a failing test's timeline can
	// be written; it costs two allocations per call and a share of the
	// call rate that load on the machine hides, see BENCHMARKS.md).
	EnvTrace = "LABTEST_TRACE"
	// EnvState names the file through which a test process run by the
	// command reports finished tests and asks to be rerun; set, a test
	// whose virtual clock stalls ends the process instead of rerunning the
	// test itself.
	EnvState = "LABTEST_STATE"
	// EnvWarnings names a file to which warnings are appended, one per
	// line, headed by the test's name (the command prints them at the
	// end, where go test would hide a passing test's output).
	EnvWarnings = "LABTEST_WARNINGS"
)

// RerunExitCode is the exit status of a test process that stopped because
// a test must be rerun in real time (only when EnvState is set).
const RerunExitCode = 86

// An Option changes how Virtual runs a test.
type Option func(*config)

// Strict makes Virtual fail a test that leaves goroutines blocked in its
// bubble after it returns (by default they are tolerated and listed with
// -v), and a test found sleeping or waiting on a channel while holding a
// lock (by default a warning, and the test is rerun in real time).
func Strict() Option { return func(c *config) { c.strict = true } }

// Concurrent lets the test run beside other tests, in parallel (synctest
// bubbles are independent). labrpc then cannot tell which test a network
// belongs to: its messages take no virtual latency (a loop bounded by
// elapsed time must block on something else, such as the network's own
// delays), and a failing test's timeline is not written.
func Concurrent() Option { return func(c *config) { c.concurrent = true } }

// WithLatency sets the virtual time each labrpc message takes.
func WithLatency(d time.Duration) Option { return func(c *config) { c.latency = d } }

type config struct {
	concurrent bool
	trace      bool
	real       bool
	strict     bool
	latency    time.Duration
	traceDir   string
	state      string
	warnings   string
}

func configFor(t *testing.T, opts []Option) config {
	c := config{latency: DefaultLatency, traceDir: os.Getenv(EnvTraceDir), state: os.Getenv(EnvState), warnings: os.Getenv(EnvWarnings), trace: os.Getenv(EnvTrace) != "0"}
	if os.Getenv(EnvReal) == "1" {
		c.real = true
	}
	for _, name := range strings.Split(os.Getenv(EnvRealTests), ",") {
		if name != "" && name == t.Name() {
			c.real = true
		}
	}
	if os.Getenv(EnvStrict) == "1" {
		c.strict = true
	}
	if v := os.Getenv(EnvLatency); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			t.Fatalf("labtest: %s=%q: want a duration such as 1ms", EnvLatency, v)
		}
		c.latency = d
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Virtual runs f as the body of t in virtual time: in a testing/synctest
// bubble, where sleeping, timers and timeouts take no real time, and where
// every labrpc message takes a small virtual latency.
//
// What real-time harnesses tolerate, Virtual tolerates too: goroutines left
// blocked after f returns are listed with -v and otherwise ignored (Strict
// fails on them, but not on sleeping ones or the tester's own). What virtual time cannot do, it detects within about a
// second of real time:
//
//   - The virtual clock stops because a goroutine waits on a sync.Mutex
//     held by a sleeping goroutine (synctest does not count mutex waits as
//     durably blocked, so the clock stops for good): Virtual names the
//     waiting goroutines and their lock, and the goroutines the source
//     shows to sleep or wait on a channel while holding a lock (see the
//     package documentation); those are logged as a warning (Strict fails
//     the test), and f is rerun in real time. If such a holder waits on a
//     nil channel or in an empty select, no rerun can help: the test fails
//     at once, with its timeline.
//   - The virtual clock runs slower than the real one (the test is
//     CPU-bound): under the labtest command, the test process ends and the
//     command reruns the test in real time in a new one. Called directly,
//     Virtual lets the test go on in virtual time (correct, only slower),
//     unless the clock does not move at all for a few seconds while
//     goroutines run: the test spins, and fails naming them.
//   - A test still running after the go test -timeout in virtual time fails
//     with a list of its goroutines (and of the locks the blocked ones
//     hold) instead of hanging.
//
// A test that calls t.Run, t.Parallel or t.Deadline, which synctest does
// not allow, runs in real time. If the test fails, or hangs until shortly
// before the go test -timeout, the timeline of every labrpc network it made
// is written to a file whose path is logged.
//
// Virtual must be called from the test's own goroutine. Tests using it
// must not run in parallel, unless they pass Concurrent.
func Virtual(t *testing.T, f func(t *testing.T), opts ...Option) {
	t.Helper()
	c := configFor(t, opts)
	recordOutcome(t, c)
	if c.real {
		runReal(t, f, c)
		return
	}
	reason, parked, bugs, run := runVirtual(t, f, c)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		writeTraces(t, run, c) // after t.Errorf: only a failed test's timeline is written
		t.FailNow()
	}
	if len(bugs) > 0 {
		msg := fmt.Sprintf("%s sleeps or waits on a channel while holding a lock (never sleep or wait holding a lock: every goroutine that needs it waits too):\n\t%s",
			t.Name(), strings.Join(bugs, "\n\t"))
		if c.strict {
			// -strict fails on the bug itself: a rerun in real time
			// would only hide it.
			fail("labtest: %s\nlabtest: %s", msg, reason)
		}
		warn(t, c, msg)
	}
	if reason == "" {
		return
	}
	if c.state != "" {
		requestRerun(t, c, reason) // the command reruns the test in a fresh process
	}
	if !parked {
		// The abandoned bubble still runs; a rerun beside it would share
		// the CPU and the package's state with it.
		fail("labtest: %s\nlabtest: run %s in real time: with the labtest command (which does so by itself), or %s=%s", reason, t.Name(), EnvRealTests, t.Name())
	}
	t.Logf("labtest: %s\nlabtest: rerunning %s in real time", reason, t.Name())
	runReal(t, f, c)
}

// Real runs f as the body of t in real time, with what Virtual adds
// around a test (a failing test's trace, the command's bookkeeping). The
// labtest command uses it for tests that call t.Run or t.Parallel.
func Real(t *testing.T, f func(t *testing.T), opts ...Option) {
	t.Helper()
	c := configFor(t, opts)
	recordOutcome(t, c)
	runReal(t, f, c)
}

// begin makes run the one labrpc sees, unless the test runs beside others.
func (c config) begin(run *labhook.Run) (end func()) {
	if c.concurrent {
		return func() {}
	}
	return labhook.Begin(run)
}

// onRegister applies the trace setting to a network made during the test
// (labrpc starts such networks with their trace on).
func (c config) onRegister(n labhook.Network) {
	if tn, ok := n.(interface{ EnableTrace(bool) }); ok {
		tn.EnableTrace(c.trace)
	}
}

func runReal(t *testing.T, f func(*testing.T), c config) {
	run := &labhook.Run{OnRegister: c.onRegister}
	defer c.begin(run)()
	defer writeTraces(t, run, c)
	defer traceBeforeTimeout(t, run, c)()
	f(t)
}

// outcome of a virtual run, as the goroutine running the bubble reports it.
type outcome struct {
	panicked any  // a panic other than synctest's deadlock reports
	leftover bool // the bubble ended with goroutines still blocked
}

// runVirtual runs f in a bubble and returns why it must be rerun in real
// time, or "" if it ran to the end (passing or failing); parked reports
// that none of the abandoned bubble's goroutines can run again, and bugs
// the goroutines proven to sleep or wait on a channel while holding a lock
// when it was abandoned.
func runVirtual(t *testing.T, f func(*testing.T), c config) (rerun string, parked bool, bugs []string, run *labhook.Run) {
	t.Helper()
	run = &labhook.Run{Virtual: true, Latency: c.latency, OnRegister: c.onRegister}
	defer c.begin(run)()
	defer traceBeforeTimeout(t, run, c)()

	var (
		vnow     atomic.Int64 // the bubble's clock, UnixNano, updated by the heartbeat
		bubble   atomic.Int64 // the bubble's id
		stopBeat atomic.Bool  // ends the heartbeat
		realOnly atomic.Value // string: why f must run in real time
		fEnded   atomic.Bool  // f and its cleanups have run
		skipped  atomic.Bool  // f skipped the test (synctest does not pass that on)
	)
	done := make(chan outcome, 1)
	go func() {
		var out outcome
		defer func() { done <- out }()
		defer func() {
			if r := recover(); r != nil {
				if err, ok := r.(error); ok && strings.HasPrefix(err.Error(), "deadlock: ") && fEnded.Load() {
					out.leftover = true
					return
				}
				if err, ok := r.(error); ok && strings.HasPrefix(err.Error(), "deadlock: ") && stopBeat.Load() {
					return // abandoned by the watchdog below
				}
				out.panicked = r
			}
		}()
		synctest.Test(t, func(t *testing.T) {
			bubble.Store(int64(currentBubble()))
			vnow.Store(time.Now().UnixNano())
			quit := make(chan struct{})
			t.Cleanup(func() { // registered first: runs after f's cleanups
				close(quit)
				fEnded.Store(true)
			})
			go beat(&vnow, &stopBeat, quit)
			defer func() { skipped.Store(t.Skipped()) }()
			defer func() {
				if r := recover(); r != nil {
					if s, ok := r.(string); ok && isBubbleRefusal(s) {
						realOnly.Store(s)
						return
					}
					panic(r)
				}
			}()
			f(t)
		})
	}()

	start := time.Now()
	var vstart, lastV int64
	lastProgress := start
	var lastDiagnosis time.Time
	noted := false
	watch := clockWatch{window: slowWindow}
	budget := virtualBudget(t, start)
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		select {
		case out := <-done:
			if out.panicked != nil {
				panic(out.panicked)
			}
			if r, ok := realOnly.Load().(string); ok {
				return fmt.Sprintf("%s cannot run in a synctest bubble (%s)", t.Name(), r), true, nil, run
			}
			if out.leftover {
				reportLeftovers(t, int(bubble.Load()), c.strict)
			}
			writeTraces(t, run, c)
			if skipped.Load() && !t.Failed() {
				t.SkipNow() // its reason is in the log already
			}
			return "", false, nil, run
		case <-tick.C:
		}
		v := vnow.Load()
		if v == 0 {
			continue // the bubble has not started yet
		}
		if vstart == 0 {
			vstart = v
		}
		if fEnded.Load() {
			continue // only leftovers; synctest reports them at once
		}
		velapsed := time.Duration(v - vstart)
		if velapsed > budget {
			stopBeat.Store(true)
			gs := inBubble(allGoroutines(), int(bubble.Load()))
			msg := fmt.Sprintf("labtest: %s still running after %v of virtual time (the go test -timeout); its goroutines:\n\t%s",
				t.Name(), budget.Round(time.Second), strings.Join(summary(gs), "\n\t"))
			if bugs, _ := lockBugs(newLockReader(), gs); len(bugs) > 0 {
				msg += "\nlabtest: sleeping or waiting on a channel while holding a lock:\n\t" + strings.Join(bugs, "\n\t")
			}
			t.Error(msg)
			writeTraces(t, run, c) // after t.Error: only a failed test's timeline is written
			t.FailNow()
		}
		if v != lastV {
			lastV, lastProgress = v, time.Now()
		}
		if !watch.observe(time.Since(start), velapsed) {
			continue
		}
		// The clock crawls or stands still. A goroutine dump stops the
		// world: take one only to decide, and at most once a second.
		stopped := time.Since(lastProgress) >= slowWindow
		if c.state == "" && !stopped {
			// Called directly, a test whose clock crawls still runs
			// correctly, only slower: keep it going.
			if !noted {
				d := diagnose(inBubble(allGoroutines(), int(bubble.Load())))
				t.Logf("labtest: %s\nlabtest: continuing in virtual time (the labtest command would rerun it in real time)", d.text)
				noted = true
			}
			continue
		}
		if time.Since(lastDiagnosis) < time.Second {
			continue
		}
		lastDiagnosis = time.Now()
		d := diagnose(inBubble(allGoroutines(), int(bubble.Load())))
		if d.stalled && d.forever != "" {
			// In real time the test would hang as well, until the go
			// test -timeout: fail it now, with its timeline.
			stopBeat.Store(true)
			t.Errorf("labtest: %s: %s\nlabtest: %s; a rerun in real time would hang until the go test -timeout", t.Name(), d.text, d.forever)
			writeTraces(t, run, c) // after t.Errorf: only a failed test's timeline is written
			t.FailNow()
		}
		if d.stalled || c.state != "" {
			// A stall never ends; under the command, a crawling test is
			// cheaper to rerun in real time than to wait for.
			stopBeat.Store(true)
			return d.text, d.stalled, d.bugs, run
		}
		// A clock that does not move at all while goroutines run: the
		// test spins, and may never end.
		if time.Since(lastProgress) >= spinLimit {
			stopBeat.Store(true)
			return fmt.Sprintf("its virtual clock has not moved for %v of real time: %s", spinLimit, d.text), false, d.bugs, run
		}
	}
}

// beat publishes the bubble's clock every heartbeat of virtual time until
// quit is closed (the test is over) or stop is set (the watchdog gave up on
// the bubble).
func beat(vnow *atomic.Int64, stop *atomic.Bool, quit <-chan struct{}) {
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for !stop.Load() {
		select {
		case <-quit:
			return
		case <-tick.C:
			vnow.Store(time.Now().UnixNano())
		}
	}
}

// isBubbleRefusal reports the panics of testing calls that synctest
// bubbles do not allow.
func isBubbleRefusal(s string) bool {
	return strings.HasPrefix(s, "testing: t.Run called inside synctest bubble") ||
		strings.HasPrefix(s, "testing: t.Parallel called inside synctest bubble") ||
		strings.HasPrefix(s, "testing: t.Deadline called inside synctest bubble")
}

// virtualBudget is how much virtual time a test may take: what is left of
// the go test -timeout, or ten minutes without one.
func virtualBudget(t *testing.T, now time.Time) time.Duration {
	if d, ok := t.Deadline(); ok {
		return d.Sub(now)
	}
	return 10 * time.Minute
}

// reportLeftovers lists the goroutines a test left blocked, with -v (or
// fails the test under Strict). The tester's own goroutines (isTesterFile:
// the 2025 tester's applier never ends) are listed apart, with -v, and
// never fail it. A goroutine left sleeping is not blocked:
// the bubble's clock stops when the test returns, but in real time it
// would wake (a ticker that sleeps, then sees it was killed); it is listed
// with -v and never fails the test.
func reportLeftovers(t *testing.T, bubble int, strict bool) {
	t.Helper()
	var blocked, sleeping, testers []goroutine
	for _, g := range inBubble(allGoroutines(), bubble) {
		switch {
		case g.sleeps():
			sleeping = append(sleeping, g)
		case isTesterFile(g.where().pos):
			testers = append(testers, g)
		default:
			blocked = append(blocked, g)
		}
	}
	if len(testers) > 0 && verbose() {
		t.Logf("labtest: %s left %d of the tester's goroutine(s) blocked (the course's code, not the lab's: never a failure):\n\t%s", t.Name(), len(testers), strings.Join(summary(testers), "\n\t"))
	}
	if len(blocked) > 0 {
		msg := fmt.Sprintf("labtest: %s left %d goroutine(s) blocked:\n\t%s", t.Name(), len(blocked), strings.Join(summary(blocked), "\n\t"))
		switch {
		case strict:
			t.Error(msg)
		case verbose():
			t.Log(msg)
		}
	}
	if len(sleeping) > 0 && verbose() {
		t.Logf("labtest: %s left %d goroutine(s) sleeping (they would wake in real time):\n\t%s", t.Name(), len(sleeping), strings.Join(summary(sleeping), "\n\t"))
	}
}

// verbose reports go test's -v, unless the labtest command runs the test
// verbose only to read its verdicts (-repeat without -v).
func verbose() bool { return testing.Verbose() && !labhook.Quiet() }
