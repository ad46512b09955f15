// Package labhook is the seam between labrpc/labtest and labrpc: labtest
// says, for the duration of one test, that the test runs in virtual time
// and how long each message takes; labrpc reads it when a network is made
// and registers the network so labtest can write its trace when the test
// fails. Lab tests do not run in parallel, so one run at a time is enough;
// Begin refuses a second one.
package labhook

import (
	"io"
	"os"
	"sync"
	"time"
)

// Run describes the test labtest is running.
type Run struct {
	// Virtual is true when the test runs in a testing/synctest bubble.
	Virtual bool
	// Latency is the virtual time every labrpc message takes (0: none).
	Latency time.Duration

	// OnRegister, if set, is called with each network as it registers,
	// from MakeNetwork (inside the test's bubble in virtual time): labtest
	// applies its trace setting (LABTEST_TRACE) there.
	OnRegister func(Network)

	mu       sync.Mutex
	networks []Network
}

// Network is what labtest needs from a labrpc network made during a run.
type Network interface {
	// WriteTimeline writes a self-contained HTML timeline of the
	// network's trace.
	WriteTimeline(w io.Writer) error
}

var (
	mu      sync.Mutex
	current *Run
)

// Begin makes r the current run until the returned function is called.
// It panics if a run is already current.
func Begin(r *Run) (end func()) {
	mu.Lock()
	defer mu.Unlock()
	if current != nil {
		panic("labhook: a labtest run is already in progress (labtest.Virtual does not nest or run in parallel)")
	}
	current = r
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if current == r {
			current = nil
		}
	}
}

// Current returns the current run, or nil outside labtest.
func Current() *Run {
	mu.Lock()
	defer mu.Unlock()
	return current
}

// Register records a network made during the run.
func (r *Run) Register(n Network) {
	r.mu.Lock()
	r.networks = append(r.networks, n)
	r.mu.Unlock()
	if r.OnRegister != nil {
		r.OnRegister(n)
	}
}

// Networks returns the networks made during the run, in order.
func (r *Run) Networks() []Network {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Network(nil), r.networks...)
}

// EnvQuiet, set to 1 by labtest -repeat (which runs each test binary with
// -test.v to read its verdicts) when the user did not ask for -v, keeps
// what labrpc and labtest print only at -v out of the runs' output.
const EnvQuiet = "LABTEST_QUIET"

// Quiet reports whether EnvQuiet is set.
func Quiet() bool { return os.Getenv(EnvQuiet) == "1" }
